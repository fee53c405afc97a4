"""Tokens: every malformed, forged or confused token, whatever its shape, gets 401 invalid_token.

Each case is a token the gateway must refuse; the request never reaches the upstream and the answer never
contains the token. A correctly signed control token passes through the same gateway, so the harness itself
is shown to let good tokens in.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from aiohttp import web

from tests.gateway.test_jwks import ISSUER, Issuer, forge
from tests.gateway_fixtures import INTERNAL_SECRET, Recorder
from tests.security.conftest import EdgeFactory
from tests.security.tokens import DROP, b64url, hs256, raw_token, token
from tests.security.wire import assert_not_echoed, exchange, request

NOW = int(time.time())
VALID = token()


def _unsigned(alg: str, signature: str = "") -> str:
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": "alice", "exp": NOW + 900}).encode())
    return f"{header}.{payload}.{signature}"


def _noncanonical() -> str:
    """A correctly signed token whose payload decodes to the same bytes under a second, non-canonical spelling."""
    payload = json.dumps({"sub": "alice", "exp": NOW + 900}).encode()
    while len(payload) % 3 == 0:  # leave spare bits in the last base64url character
        payload += b" "
    text = b64url(payload)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    text = text[:-1] + alphabet[alphabet.index(text[-1]) ^ 1]
    assert base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == payload
    signing_input = b64url(b'{"alg":"HS256"}') + "." + text
    return f"{signing_input}.{hs256(signing_input)}"


def _nested(depth: int) -> str:
    return raw_token('{"alg":"HS256"}', f'{{"sub":"alice","exp":{NOW + 900},"x":{"[" * depth + "]" * depth}}}')


REFUSED_401: dict[str, str] = {
    **{f"alg {alg!r}": _unsigned(alg) for alg in ("none", "None", "NONE", "nOnE", "")},
    "alg none with a signature": _unsigned("none", hs256("x")),
    "alg missing": raw_token('{"typ":"JWT"}', json.dumps({"sub": "alice", "exp": NOW + 900})),
    "alg null": raw_token('{"alg":null}', json.dumps({"sub": "alice", "exp": NOW + 900})),
    "alg list": raw_token('{"alg":["HS256"]}', json.dumps({"sub": "alice", "exp": NOW + 900})),
    "alg HS384 signed HS256": token({"alg": "HS384"}),
    "stripped signature": VALID.rsplit(".", 1)[0] + ".",
    "signature of another token": VALID.rsplit(".", 1)[0] + "." + token(sub="bob").rsplit(".", 1)[1],
    "payload swapped after signing": ".".join(
        [VALID.split(".")[0], token(sub="bob").split(".")[1], VALID.split(".")[2]]
    ),
    "wrong secret": token(secret="w" * 48),
    "the internal secret": token(secret=INTERNAL_SECRET),
    "gateway assertion as bearer": token(
        {"alg": "HS256", "typ": "tg-assertion+jwt"},
        secret=INTERNAL_SECRET,
        iss="taskgate-gateway",
        aud="task-service",
        mth="GET",
        tgt="/api/alice/tasks",
    ),
    "assertion typ with the user secret": token({"alg": "HS256", "typ": "tg-assertion+jwt"}),
    **{
        f"header {param}": token({"alg": "HS256", param: value})
        for param, value in (
            ("crit", ["exp"]),
            ("jku", "http://127.0.0.1:9/jwks"),
            ("x5u", "http://127.0.0.1:9/cert"),
            ("jwk", {"kty": "oct", "k": b64url(b"k" * 32)}),
            ("x5c", ["MIIB"]),
            ("zip", "DEF"),
            ("enc", "A256GCM"),
        )
    },
    "exp numeric string": token(exp=str(NOW + 900)),
    "exp boolean": token(exp=True),
    "exp null": token(exp=None),
    "exp list": token(exp=[NOW + 900]),
    "exp missing": token(exp=DROP),
    "exp huge integer": raw_token('{"alg":"HS256"}', f'{{"sub":"alice","exp":{10**400}}}'),
    "exp overflowing float": raw_token('{"alg":"HS256"}', '{"sub":"alice","exp":1e400}'),
    "exp NaN": raw_token('{"alg":"HS256"}', '{"sub":"alice","exp":NaN}'),
    "exp Infinity": raw_token('{"alg":"HS256"}', '{"sub":"alice","exp":Infinity}'),
    "expired beyond leeway": token(exp=NOW - 60),
    "nbf numeric string": token(nbf="0"),
    "nbf in the future": token(nbf=NOW + 3600),
    "iat numeric string": token(iat=str(NOW)),
    "iat in the future": token(iat=NOW + 3600),
    "sub missing": token(sub=DROP),
    "sub empty": token(sub=""),
    "sub number": token(sub=123),
    "sub null": token(sub=None),
    "sub list": token(sub=["alice"]),
    "sub object": token(sub={"id": "alice"}),
    "sub with slash": token(sub="alice/../bob"),
    "sub dot-dot": token(sub=".."),
    "sub with newline": token(sub="alice\n"),
    "sub with NUL": token(sub="alice\x00"),
    "sub with space": token(sub="alice "),
    "sub non-ASCII": token(sub="ålice"),
    "sub look-alike Cyrillic": token(sub="\u0430lice"),
    "sub over 128 characters": token(sub="a" * 129),
    # A session id no revocation could name: refused rather than made unrevocable.
    "sid number": token(sid=123),
    "sid list": token(sid=["s1"]),
    "sid null": token(sid=None),
    "duplicate sub in payload": raw_token('{"alg":"HS256"}', f'{{"sub":"bob","sub":"alice","exp":{NOW + 900}}}'),
    "duplicate exp in payload": raw_token('{"alg":"HS256"}', f'{{"sub":"alice","exp":1,"exp":{NOW + 900}}}'),
    "duplicate alg in header": raw_token('{"alg":"none","alg":"HS256"}', f'{{"sub":"alice","exp":{NOW + 900}}}'),
    "payload not an object": raw_token('{"alg":"HS256"}', '["alice"]'),
    "header not an object": raw_token('"HS256"', json.dumps({"sub": "alice", "exp": NOW + 900})),
    "payload not UTF-8": ".".join(
        [
            b64url(b'{"alg":"HS256"}'),
            b64url(b'{"sub":"\xff"}'),
            hs256(b64url(b'{"alg":"HS256"}') + "." + b64url(b'{"sub":"\xff"}')),
        ]
    ),
    "non-canonical base64url": _noncanonical(),
    "deeply nested JSON": _nested(1500),
    "aud present, none configured": token(aud="someone"),
}

# Shapes that are no JWS at all: each is a presented token that cannot be used, so 401 invalid_token like any
# other (RFC 6750 §3.1), refused before any decoding or key lookup.
NOT_A_JWS: dict[str, str] = {
    "null": "null",
    "undefined": "undefined",
    "a word": "abc",
    "Better Auth session token": "hT2oPqLk9xVbN3mW7sR1uY5eA8dC4fGj",
    "five segments (JWE)": "a.b.c.d.e",
    "base64 padding": VALID.split(".")[0] + "=." + VALID.split(".", 1)[1],
    "standard base64 alphabet": VALID.replace("-", "+").replace("_", "/")
    if ("-" in VALID or "_" in VALID)
    else VALID + "+",
    "two segments": ".".join(VALID.split(".")[:2]),
    "empty segments": "..",
    "two tokens": f"{VALID} {VALID}",
    "quoted": f'"{VALID}"',
    "non-ASCII": "t\u00f6ken.\u00e9.x",
    "JSON": '{"token":"x"}',
    "tab inside": f"{VALID}\t{VALID}",
    # decodable as far as the header, whose kid would cost a JWKS refetch if anything after the shape were read
    "JWS with an unknown kid, then a word": ".".join(
        [
            b64url(b'{"alg":"EdDSA","kid":"unknown"}'),
            b64url(json.dumps({"sub": "alice", "exp": NOW + 900}).encode()),
            "c2ln",
        ]
    )
    + " extra",
}


async def _status(port: int, tok: str, path: str = "/api/alice/tasks") -> tuple[int, bytes]:
    ex = await exchange(port, request("GET", path, token=tok))
    return ex.status, ex.data


@pytest.mark.parametrize("name", list(REFUSED_401))
async def test_refused_tokens_get_401(edge: EdgeFactory, recorder: Recorder, name: str) -> None:
    gw = await edge()
    tok = REFUSED_401[name]
    status, data = await _status(gw.port, tok)
    assert status == 401, data[:300]
    assert b'error="invalid_token"' in data
    assert_not_echoed(data, tok)
    assert recorder.received == []
    # the same gateway lets the control token through
    assert (await _status(gw.port, VALID))[0] == 200


@pytest.mark.parametrize("name", list(NOT_A_JWS))
async def test_values_that_are_not_a_jws_get_401_without_a_key_lookup(
    edge: EdgeFactory, recorder: Recorder, issuer: Issuer, name: str
) -> None:
    issuer.add("k", "EdDSA")
    gw = await edge(jwks_url=issuer.url, jwt_issuer=ISSUER, jwt_audience=(ISSUER,), jwks_refetch_cooldown_s=0.0)
    fetched = issuer.fetches
    tok = NOT_A_JWS[name]
    line = f"Authorization: Bearer {tok}".encode().decode("latin-1")  # request() sends latin-1: these are UTF-8 bytes
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", line))
    [answer] = ex.responses
    assert answer.status == 401, ex.data[:300]
    assert answer.header("WWW-Authenticate") == ['Bearer realm="taskgate", error="invalid_token"']
    assert json.loads(answer.body) == {"detail": "invalid token"}
    assert_not_echoed(ex.data, tok)
    assert issuer.fetches == fetched  # no JWKS fetch for garbage, even with no refetch cooldown
    assert recorder.received == []


async def test_an_over_long_bearer_value_is_refused_by_the_http_layer(edge: EdgeFactory, recorder: Recorder) -> None:
    """Over the 8190-byte field limit the HTTP layer answers 431 and echoes nothing; the verifier's own bound
    (MAX_TOKEN_LENGTH) is held by the unit property in test_fuzz.py."""
    gw = await edge()
    tok = VALID + "A" * 8200
    status, data = await _status(gw.port, tok)
    assert status == 431
    assert_not_echoed(data, tok)
    assert recorder.received == []


async def test_max_ttl_requires_iat(edge: EdgeFactory, recorder: Recorder) -> None:
    gw = await edge(jwt_max_ttl_s=900)
    assert (await _status(gw.port, token(iat=DROP)))[0] == 401
    assert (await _status(gw.port, token(iat=NOW, exp=NOW + 901)))[0] == 401
    assert (await _status(gw.port, token(iat=NOW, exp=NOW + 900)))[0] == 200
    assert len(recorder.received) == 1


async def test_wrong_issuer_or_audience_types_are_refused(edge: EdgeFactory, recorder: Recorder) -> None:
    gw = await edge(jwt_issuer="https://auth.example", jwt_audience=("https://app.example",))
    good: dict[str, Any] = {"iss": "https://auth.example", "aud": "https://app.example"}
    for claims in (
        {**good, "iss": ["https://auth.example"]},
        {**good, "iss": "https://auth.example/"},
        {**good, "aud": 1},
        {**good, "aud": []},
        {**good, "aud": "https://app.example.evil"},
        {**good, "iss": None},
    ):
        assert (await _status(gw.port, token(**claims)))[0] == 401, claims
    assert (await _status(gw.port, token(**good)))[0] == 200
    assert len(recorder.received) == 1


async def test_key_url_headers_cause_no_outbound_connection(edge: EdgeFactory, recorder: Recorder) -> None:
    """jku / x5u / x5c / jwk name key material; the gateway never fetches or uses it (a listener proves it)."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"keys": []})

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bait = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        gw = await edge()
        for header in ({"jku": f"{bait}/jwks"}, {"x5u": f"{bait}/cert"}, {"jku": f"{bait}/jwks", "kid": "k"}):
            status, _ = await _status(gw.port, token({"alg": "HS256", **header}))
            assert status == 401
    finally:
        await runner.cleanup()
    assert hits == []
    assert recorder.received == []


ASYMMETRIC_CONFUSION: dict[str, tuple[str, dict[str, Any]]] = {
    "EdDSA key, token says ES256": ("EdDSA", {"alg": "ES256"}),
    "ES256 key, token says ES384": ("ES256", {"alg": "ES384"}),
    "ES256 key, token says EdDSA": ("ES256", {"alg": "EdDSA"}),
    "RS256 key, token says HS256": ("RS256", {"alg": "HS256"}),
    "RS256 key, token says none": ("RS256", {"alg": "none"}),
    "RS256 key, kid missing": ("RS256", {"kid": None}),
    "RS256 key, kid a number": ("RS256", {"kid": 1}),
    "RS256 key, kid with a path": ("RS256", {"kid": "../../../../etc/passwd"}),
    "RS256 key, kid with SQL": ("RS256", {"kid": "k' OR '1'='1"}),
}


@pytest.mark.parametrize("name", list(ASYMMETRIC_CONFUSION))
async def test_a_token_cannot_choose_how_its_key_is_used(
    edge: EdgeFactory, recorder: Recorder, issuer: Issuer, name: str
) -> None:
    alg, override = ASYMMETRIC_CONFUSION[name]
    issuer.add("k", alg)
    gw = await edge(jwks_url=issuer.url, jwt_issuer=ISSUER, jwt_audience=(ISSUER,), jwks_refetch_cooldown_s=30.0)
    private = issuer.keys["k"][0]
    claims = {"sub": "alice", "exp": NOW + 900, "iss": ISSUER, "aud": ISSUER}
    header = {"alg": alg, "kid": "k", **override}
    header = {k: v for k, v in header.items() if v is not None}
    sign = (lambda data: private.sign(data)) if alg == "EdDSA" else (lambda data: b"\x00" * 64)
    forged = forge(header, claims, sign)
    assert (await _status(gw.port, forged))[0] == 401
    assert (await _status(gw.port, issuer.token("k")))[0] == 200
    assert len(recorder.received) == 1
    assert issuer.fetches <= 2  # start-up, and at most one refetch for an unknown kid
