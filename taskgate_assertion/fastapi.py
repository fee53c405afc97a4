"""Trust only the gateway, in one line: a FastAPI dependency that verifies the assertion of each request.

    gateway = TrustGateway(secrets=[secret], audience="notes", claim_headers=["X-User-Role"])
    @app.post("/orgs/{org_id}/notes")
    async def add(caller: Annotated[Caller, Depends(gateway.user)]) -> ...

`gateway.user` requires a user (a route with `auth:` in the policy); `gateway.request` also accepts an
`auth: none` route's assertion, which has no user. Either answers 401 `{"detail": …}` — before the route or
any dependency of it runs — when the assertion is missing, forged, for another upstream, expired, replayed or
for another method, target or body. (FastAPI decodes a declared JSON body parameter before dependencies:
malformed JSON there is its 422; a route that must not tell that apart takes its body through a dependency
that depends on this one, docs/upstreams.md.) The body is read (`await request.body()`) to check its digest; Starlette
keeps it on the request, so the route's own body parameter or `request.body()` reads the same bytes again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from taskgate_assertion.format import ASSERTION_HEADER, USER_HEADER
from taskgate_assertion.verify import (
    DEFAULT_REPLAY_CAPACITY,
    AssertionRejected,
    AssertionVerifier,
    request_target,
)

logger = logging.getLogger("taskgate_assertion")


@dataclass(frozen=True, slots=True)
class Caller:
    """A request the gateway vouched for.

    `user` is the verified user (None only through `TrustGateway.request`, on an `auth: none` route).
    `claims` holds the configured claim headers the policy copied (`headers:` in the policy), by the names
    given to TrustGateway; one the gateway did not send is absent. They are inside the assertion's signature
    (`hdr`): a value changed on the way, or such a header added to a request the gateway sent without it, is
    refused with the assertion (docs/upstreams.md).
    """

    user: str | None
    claims: Mapping[str, str]
    request_id: str | None


def _only_header(request: Request, name: str) -> str | None:
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise AssertionRejected(f"{name} sent more than once")
    return values[0] if values else None


class TrustGateway:
    """Verifies the gateway assertion for one upstream: `audience` is the upstream's name in the policy.

    `secrets` are the internal secrets (the first signs at the gateway; any verifies, for rotation). One
    instance per application: it holds the replay cache, which must see every request to refuse a replay.
    """

    def __init__(
        self,
        secrets: Sequence[bytes | str],
        audience: str,
        *,
        claim_headers: Sequence[str] = (),
        replay_capacity: int = DEFAULT_REPLAY_CAPACITY,
    ) -> None:
        keys = [secret.encode() if isinstance(secret, str) else secret for secret in secrets]
        self.verifier = AssertionVerifier(keys, audience, replay_capacity=replay_capacity)
        self._claim_headers = tuple(claim_headers)

    async def _verify(self, request: Request, *, require_user: bool) -> Caller:
        try:
            token = _only_header(request, ASSERTION_HEADER)
            if token is None:
                raise AssertionRejected("no assertion")
            user_header = _only_header(request, USER_HEADER)
            target = request_target(request.scope)
            verified = self.verifier.verify(
                token,
                request.method,
                target,
                await request.body(),
                user_header,
                require_user=require_user,
                headers=functools.partial(_only_header, request),
            )
        except AssertionRejected as exc:
            logger.info("gateway assertion rejected: %s", exc)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or invalid gateway assertion") from None
        bound = verified.claim_headers
        claims = {name: bound[name.lower()] for name in self._claim_headers if name.lower() in bound}
        return Caller(verified.user, claims, verified.request_id)

    async def user(self, request: Request) -> Caller:
        """Dependency: a request with a verified user (`Caller.user` is a str)."""
        return await self._verify(request, require_user=True)

    async def request(self, request: Request) -> Caller:
        """Dependency: any request through the gateway, an `auth: none` route's (no user) included."""
        return await self._verify(request, require_user=False)
