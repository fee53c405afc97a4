"""Domain errors → the gateway's answers, in one table: status, `detail`, challenge and other headers, close.

Every layer raises what went wrong in its own terms (a target that fails the strict checks, a token that does
not verify, an upstream that timed out); only this table decides what the client is told. An exception that
is not in it is a bug: the pipeline answers a bare 500 (http/messages.internal_error). Every answer has the
one JSON shape `{"detail": …}`, and `detail` is a fixed gateway phrase, never client input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .auth.extract import AuthorizationMalformed, BearerMissing
from .auth.verifier import InvalidToken, RevocationsUnavailable
from .http.bodies import BodyTimedOut, BodyTooLarge, CompressedBody, MalformedBody
from .http.messages import Reply, UnsupportedExpectation, UnsupportedVersion, error_response
from .http.upstream_pool import UpstreamTimedOut, UpstreamUnavailable, UpstreamUnexpectedStatus
from .policy.cors import PreflightRefused
from .policy.headers import UnsafeHeader
from .policy.match import Forbidden, MethodNotAllowed
from .policy.paths import BadTarget, NotRouted
from .policy.ratelimit import RateLimited

CHALLENGE = 'Bearer realm="taskgate"'
CHALLENGE_INVALID = 'Bearer realm="taskgate", error="invalid_token"'
CHALLENGE_MALFORMED = 'Bearer realm="taskgate", error="invalid_request"'


@dataclass(frozen=True, slots=True)
class Answer:
    """How one kind of failure is answered. `detail` None: the exception's own message, which is a fixed
    phrase of the module that raised it (the strict target checks name what was wrong). `close`: the
    connection ends with this answer (a body that was not read, or only partly)."""

    status: int
    detail: str | None
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    more: Callable[[Exception], list[tuple[str, str]]] | None = None


def _allow(exc: Exception) -> list[tuple[str, str]]:
    return [("Allow", ", ".join(exc.allow))] if isinstance(exc, MethodNotAllowed) else []


def _retry_after(exc: Exception) -> list[tuple[str, str]]:
    return [("Retry-After", str(exc.retry_after_s))] if isinstance(exc, RateLimited) else []


def _unsafe_header(exc: Exception) -> str:
    return f"header {exc} holds a control character"


ANSWERS: Mapping[type[Exception], Answer] = {
    # parse
    UnsupportedVersion: Answer(400, "unsupported HTTP version"),
    UnsupportedExpectation: Answer(417, "only Expect: 100-continue is supported"),
    BadTarget: Answer(400, None),
    NotRouted: Answer(404, "not found"),
    MethodNotAllowed: Answer(405, "method not allowed", more=_allow),
    PreflightRefused: Answer(403, "CORS preflight not allowed"),
    # authenticate
    AuthorizationMalformed: Answer(400, None, (("WWW-Authenticate", CHALLENGE_MALFORMED),)),
    BearerMissing: Answer(401, "bearer token required", (("WWW-Authenticate", CHALLENGE),)),
    # IssuerNotAccepted (a valid token the route does not accept) is an InvalidToken: the same answer.
    InvalidToken: Answer(401, "invalid token", (("WWW-Authenticate", CHALLENGE_INVALID),)),
    RevocationsUnavailable: Answer(503, "revocations not loaded yet", (("Retry-After", "1"),)),
    # authorise
    Forbidden: Answer(403, "token does not grant access to this resource"),
    RateLimited: Answer(429, "rate limit exceeded", more=_retry_after),
    # forward: the request body (unread or partly read bodies end the connection)
    BodyTooLarge: Answer(413, "request body too large", close=True),
    BodyTimedOut: Answer(408, "request body timeout", close=True),
    CompressedBody: Answer(415, "compressed request bodies are not accepted"),
    MalformedBody: Answer(400, "malformed request body"),
    UnsafeHeader: Answer(400, None),
    # forward: the upstream
    UpstreamUnavailable: Answer(502, "upstream unavailable"),
    UpstreamUnexpectedStatus: Answer(502, "upstream answered with an unexpected status"),
    UpstreamTimedOut: Answer(504, "upstream timed out"),
}
_DETAILS: Mapping[type[Exception], Callable[[Exception], str]] = {UnsafeHeader: _unsafe_header}


def status_of(kind: type[Exception]) -> int:
    """The status a kind of domain error is answered with (for `taskgate policy explain`)."""
    return next(ANSWERS[cls].status for cls in kind.__mro__ if cls in ANSWERS)


def answer_for(exc: Exception) -> Reply | None:
    """The answer to a domain error (the nearest class in the table), or None for anything else: a bug."""
    for cls in type(exc).__mro__:
        found = ANSWERS.get(cls)
        if found is not None:
            return _reply(cls, found, exc)
    return None


def _reply(cls: type[Exception], found: Answer, exc: Exception) -> Reply:
    detail = found.detail
    if detail is None:
        detail = _DETAILS[cls](exc) if cls in _DETAILS else str(exc)
    headers = list(found.headers)
    if found.more is not None:
        headers.extend(found.more(exc))
    reply = error_response(found.status, detail, headers)
    reply.close = found.close
    return reply
