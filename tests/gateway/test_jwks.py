"""JWKS verification through the gateway: Better Auth's asymmetric keys, rotation, outages, confusion attacks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.gateway_fixtures import GatewayFactory, GatewayUnderTest, Recorder, bearer, make_token

ISSUER = "http://auth.example"


def new_key(alg: str) -> Any:
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    """Assemble a JWS by hand, for headers pyjwt would refuse to produce; `sign` maps input → signature."""
    signing_input = b".".join(jwt.utils.base64url_encode(json.dumps(part).encode()) for part in (header, claims))
    return (signing_input + b"." + jwt.utils.base64url_encode(sign(signing_input))).decode()


def public_jwk(private: Any, alg: str, kid: str) -> dict[str, Any]:
    algo = jwt.get_algorithm_by_name(alg)
    jwk: dict[str, Any] = json.loads(algo.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


@dataclass
class Issuer:
    """A JWKS endpoint with keys the test controls; counts fetches to prove rate limits."""

    keys: dict[str, tuple[Any, str]] = field(default_factory=dict)
    fetches: int = 0
    failing: bool = False
    body_override: bytes | None = None
    hold: asyncio.Event | None = None
    _held: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/api/auth/jwks"

    def add(self, kid: str, alg: str) -> None:
        self.keys[kid] = (new_key(alg), alg)

    def token(self, kid: str, sub: str = "alice", header_alg: str | None = None, **claims: Any) -> str:
        private, alg = self.keys[kid]
        now = int(time.time())
        payload = {"sub": sub, "iat": now, "exp": now + 900, "iss": ISSUER, "aud": ISSUER, **claims}
        return jwt.encode(payload, private, algorithm=header_alg or alg, headers={"kid": kid})

    async def jwks(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        if self.failing:
            return web.Response(status=503)
        if self.body_override is not None:
            return web.Response(body=self.body_override, content_type="application/json")
        keys = [public_jwk(private, alg, kid) for kid, (private, alg) in self.keys.items()]
        if self.hold is not None:  # answer later, with the keys as they were when the fetch arrived
            held, self.hold = self.hold, None
            self._held = held
            await held.wait()
        return web.json_response({"keys": keys})

    def release(self) -> None:
        self._held.set()


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    iss = Issuer()
    app = web.Application()
    app.router.add_get("/api/auth/jwks", iss.jwks)

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound(iss.url)

    app.router.add_get("/redirect", redirect)
    iss.server = TestServer(app, host="127.0.0.1")
    await iss.server.start_server()
    yield iss
    await iss.server.close()


async def start_jwks_gateway(start_gateway: GatewayFactory, issuer: Issuer, **overrides: Any) -> GatewayUnderTest:
    settings: dict[str, Any] = {
        "jwks_url": issuer.url,
        "jwt_issuer": ISSUER,
        "jwt_audience": (ISSUER,),
        "jwks_refetch_cooldown_s": 30.0,
    }
    settings.update(overrides)
    return await start_gateway(**settings)


async def get_status(gw: GatewayUnderTest, token: str, path: str = "/api/alice/tasks") -> int:
    async with ClientSession() as client:
        resp = await client.get(gw.make_url(path), headers=bearer(token))
        return resp.status


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256", "PS256"])
async def test_each_better_auth_algorithm_verifies(
    recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer, alg: str
) -> None:
    issuer.add("k1", alg)
    gw = await start_jwks_gateway(start_gateway, issuer)
    assert await get_status(gw, issuer.token("k1")) == 200
    assert await get_status(gw, issuer.token("k1", sub="bob")) == 403
    assert await get_status(gw, issuer.token("k1", aud="http://other.example")) == 401
    assert await get_status(gw, issuer.token("k1", exp=int(time.time()) - 300)) == 401
    tampered = issuer.token("k1")
    head, _payload, sig = tampered.split(".")
    forged_payload = jwt.utils.base64url_encode(
        json.dumps({"sub": "bob", "exp": int(time.time()) + 900, "iss": ISSUER, "aud": ISSUER}).encode()
    ).decode()
    assert await get_status(gw, f"{head}.{forged_payload}.{sig}", "/api/bob/tasks") == 401
    assert len(recorder.received) == 1
    assert recorder.received[0].header("X-User-Id") == ["alice"]


async def test_token_cannot_pick_another_algorithm_for_a_key(
    recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer
) -> None:
    issuer.add("rsa", "RS256")
    issuer.add("ec", "ES256")
    gw = await start_jwks_gateway(start_gateway, issuer)
    assert await get_status(gw, issuer.token("rsa", header_alg="PS256")) == 401
    assert await get_status(gw, issuer.token("rsa", header_alg="RS384")) == 401
    rsa_public = issuer.keys["rsa"][0].public_key()
    pem = rsa_public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = rsa_public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk_text = json.dumps(public_jwk(issuer.keys["rsa"][0], "RS256", "rsa")).encode()
    claims = {"sub": "alice", "exp": int(time.time()) + 900, "iss": ISSUER, "aud": ISSUER}
    for material in (pem, der, jwk_text):
        # The public key bytes as the HMAC secret (pyjwt itself refuses to sign this).
        confused = forge(
            {"alg": "HS256", "kid": "rsa", "typ": "JWT"},
            claims,
            lambda data, secret=material: hmac.new(secret, data, hashlib.sha256).digest(),
        )
        assert await get_status(gw, confused) == 401
    assert recorder.received == []


async def test_unknown_kid_refetches_at_most_once_per_cooldown(
    recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer
) -> None:
    issuer.add("old", "EdDSA")
    gw = await start_jwks_gateway(start_gateway, issuer)
    assert issuer.fetches == 1
    issuer.add("new", "EdDSA")
    # first unknown kid may refetch: the rotated key is picked up at once
    assert await get_status(gw, issuer.token("new")) == 200
    assert issuer.fetches == 2
    # a storm of unknown kids inside the cooldown causes no further fetch
    stranger = Issuer()
    stranger.add("ghost", "EdDSA")
    for _ in range(20):
        assert await get_status(gw, stranger.token("ghost")) == 401
    for kid in ("../../etc/passwd", "' OR 1=1 --", "x" * 300):
        forged = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, stranger.keys["ghost"][0],
                            algorithm="EdDSA", headers={"kid": kid})  # fmt: skip
        assert await get_status(gw, forged) == 401
    assert issuer.fetches == 2
    assert len(recorder.received) == 1


async def test_key_added_during_a_fetch_in_flight_is_still_found(
    recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer
) -> None:
    """A fetch that began before the issuer rotated cannot hold the new key: one more fetch must follow."""
    issuer.add("old", "EdDSA")
    gw = await start_jwks_gateway(start_gateway, issuer, jwks_refetch_cooldown_s=0)
    tokens = gw.verifier
    stranger = Issuer()
    stranger.add("new", "EdDSA")
    issuer.hold = asyncio.Event()
    # A token for a kid the issuer does not publish yet forces a fetch, which the issuer holds.
    early = asyncio.create_task(get_status(gw, stranger.token("new")))
    async with asyncio.timeout(10):
        while issuer.fetches < 2:
            await asyncio.sleep(0)
    issuer.keys["new"] = stranger.keys["new"]  # the issuer rotates while that fetch is in flight
    misses = tokens.cache_misses
    late = asyncio.create_task(get_status(gw, issuer.token("new")))
    async with asyncio.timeout(10):
        while tokens.cache_misses == misses:  # then the second token waits on the held, pre-rotation fetch
            await asyncio.sleep(0)
    issuer.release()
    assert await asyncio.wait_for(early, 10) == 401
    assert await asyncio.wait_for(late, 10) == 200
    assert issuer.fetches == 3
    assert len(recorder.received) == 1


async def test_non_string_kid_is_rejected_without_fetch(
    recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer
) -> None:
    issuer.add("k", "EdDSA")
    gw = await start_jwks_gateway(start_gateway, issuer, jwks_refetch_cooldown_s=0)
    private = issuer.keys["k"][0]
    claims = {"sub": "alice", "exp": int(time.time()) + 60, "iss": ISSUER, "aud": ISSUER}
    for kid in (1, None, ["k"], {"k": 1}):
        forged = forge({"alg": "EdDSA", "kid": kid}, claims, private.sign)
        assert await get_status(gw, forged) == 401
    assert await get_status(gw, forge({"alg": "EdDSA", "kid": "k"}, claims, private.sign)) == 200
    assert issuer.fetches == 1
    assert len(recorder.received) == 1


async def test_jwks_down_at_start_then_recovers(
    recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer
) -> None:
    issuer.add("k", "ES256")
    issuer.failing = True
    gw = await start_jwks_gateway(start_gateway, issuer, jwks_refetch_cooldown_s=0)
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/readyz"))
        assert resp.status == 503
        assert (await resp.json())["checks"]["jwks"] is False
        assert await get_status(gw, issuer.token("k")) == 401
        issuer.failing = False
        assert await get_status(gw, issuer.token("k")) == 200
        assert (await client.get(gw.make_url("/readyz"))).status == 200


async def test_cached_keys_survive_a_jwks_outage(
    recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer
) -> None:
    issuer.add("k", "EdDSA")
    gw = await start_jwks_gateway(start_gateway, issuer, jwks_cache_s=0.001, jwks_refetch_cooldown_s=0)
    issuer.failing = True
    for sub_token in (issuer.token("k"), issuer.token("k", iat=int(time.time()) - 1)):
        assert await get_status(gw, sub_token) == 200
    assert issuer.fetches >= 2  # expiry triggered refreshes, which failed, and the old key kept working
    assert len(recorder.received) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"keys": "nope"}',
        b'{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k", "alg": "HS256"}]}',
        b'{"keys": [' + b'{"kty": "OKP", "crv": "Ed25519", "x": "' + b"A" * 70000 + b'", "kid": "k"}]}',
    ],
)
async def test_unusable_jwks_documents_are_refused(
    recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer, body: bytes
) -> None:
    issuer.add("k", "EdDSA")
    issuer.body_override = body
    gw = await start_jwks_gateway(start_gateway, issuer)
    assert await get_status(gw, issuer.token("k")) == 401
    assert recorder.received == []


async def test_jwks_redirects_are_not_followed(
    recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer
) -> None:
    issuer.add("k", "EdDSA")
    assert issuer.server is not None
    gw = await start_gateway(
        jwks_url=f"http://127.0.0.1:{issuer.server.port}/redirect", jwt_issuer=ISSUER, jwt_audience=(ISSUER,)
    )
    assert await get_status(gw, issuer.token("k")) == 401
    assert issuer.fetches == 0


async def test_hs256_and_jwks_side_by_side(recorder: Recorder, start_gateway: GatewayFactory, issuer: Issuer) -> None:
    issuer.add("k", "EdDSA")
    gw = await start_jwks_gateway(start_gateway, issuer)
    assert await get_status(gw, issuer.token("k")) == 200
    assert await get_status(gw, make_token("alice", iss=ISSUER, aud=ISSUER)) == 200
    assert len(recorder.received) == 2
