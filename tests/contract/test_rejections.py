"""Gateway-only contract: every rejection has the contract's status and shape, and never reaches upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import jwt
import pytest
from aiohttp import ClientSession, web

from tests.gateway_fixtures import (
    INTERNAL_SECRET,
    JWT_SECRET,
    GatewayFactory,
    Recorder,
    bearer,
    make_token,
    raw_request,
    status_of,
)

NOW = int(time.time())

INVALID_TOKENS = {
    "garbage": "not.a.jwt",
    # what frontends send before sign-in or by mistake: any presented value is a token that cannot be used
    "null": "null",
    "undefined": "undefined",
    "a word": "abc",
    "Better Auth session token": "hT2oPqLk9xVbN3mW7sR1uY5eA8dC4fGj",
    "Better Auth signed session cookie": "hT2oPqLk9xVbN3mW7sR1uY5eA8dC4fGj.Zm9vYmFyYmF6cXV4cXV1eHh4eHh4eHh4eHh4eA%3D",
    "two words": "a.b.c d.e.f",
    "quoted": f'"{make_token("alice")}"',
    "two segments": "a.b",
    "five segments (JWE)": "a.b.c.d.e",
    "padded base64url": "a.b.c=",
    "not base64url": "ab$c.d.e",
    "JWS with a trailing word": make_token("alice") + " extra",
    "expired": make_token("alice", ttl=-120),
    "wrong secret": make_token("alice", secret="w" * 40),
    "alg none": jwt.encode({"sub": "alice", "exp": NOW + 600}, None, algorithm="none"),
    "alg none with signature": jwt.encode({"sub": "alice", "exp": NOW + 600}, None, algorithm="none") + "x",
    "no exp": jwt.encode({"sub": "alice"}, JWT_SECRET, algorithm="HS256"),
    "no sub": make_token(None),
    "numeric-string exp": jwt.encode({"sub": "alice", "exp": str(NOW + 600)}, JWT_SECRET, algorithm="HS256"),
    "HS384": make_token(
        "alice",
        alg="HS384",
    ),
    "HS512": make_token(
        "alice",
        alg="HS512",
    ),
    "nbf in future": make_token("alice", nbf=NOW + 3600),
    "iat in future": make_token("alice", iat=NOW + 3600),
    "sub with slash": make_token("alice/../bob"),
    "sub not a string": make_token(123),
    "empty sub": make_token(""),
    "gateway assertion as bearer": jwt.encode(
        {"iss": "taskgate-gateway", "aud": "task-service", "sub": "alice", "exp": NOW + 30},
        INTERNAL_SECRET,
        algorithm="HS256",
        headers={"typ": "tg-assertion+jwt"},
    ),
    "aud when none configured": make_token("alice", aud="somebody"),
}


@pytest.mark.parametrize("name", list(INVALID_TOKENS))
async def test_invalid_tokens_get_401_and_never_reach_upstream(
    recorder: Recorder, start_gateway: GatewayFactory, name: str
) -> None:
    gw = await start_gateway()
    token = INVALID_TOKENS[name]
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(token))
        body = await resp.text()
    assert resp.status == 401, name
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="taskgate", error="invalid_token"'
    assert resp.headers["Content-Type"].startswith("application/json")
    assert (await resp.json()) == {"detail": "invalid token"}
    assert token[-12:] not in body
    assert recorder.received == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWxpY2U6cHc="},
    ],
    ids=["none", "empty", "scheme only", "scheme and a space", "basic"],
)
async def test_no_token_gets_a_plain_challenge(
    recorder: Recorder, start_gateway: GatewayFactory, headers: dict[str, str]
) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/api/alice/tasks"), headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="taskgate"'
        assert await resp.json() == {"detail": "bearer token required"}
    assert recorder.received == []


async def test_bearer_scheme_is_case_insensitive(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    token = make_token("alice")
    async with ClientSession() as client:
        for scheme in ("bearer", "BEARER", "BeArEr"):
            resp = await client.get(gw.make_url("/api/alice/tasks"), headers={"Authorization": f"{scheme} {token}"})
            assert resp.status == 200
    assert len(recorder.received) == 3


async def test_two_authorization_headers_are_400(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    """Malformed as HTTP, not a bad token: which header would be the credential is ambiguous."""
    gw = await start_gateway()
    token = make_token("alice")
    response = await raw_request(
        gw.port,
        (
            f"GET /api/alice/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ).encode(),
    )
    assert status_of(response) == 400
    assert b'WWW-Authenticate: Bearer realm="taskgate", error="invalid_request"\r\n' in response
    assert response.endswith(b'{"detail": "more than one Authorization header"}')
    assert token.encode() not in response
    assert recorder.received == []


async def test_other_users_path_is_403(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        for path in ("/api/bob/tasks", "/api/bob/tasks/1", "/api/Alice/tasks", "/api/alice2/tasks", "/api/alic/tasks"):
            resp = await client.get(gw.make_url(path), headers=bearer(make_token("alice")))
            assert resp.status == 403, path
            assert "detail" in await resp.json()
    assert recorder.received == []


async def test_issuer_and_audience_are_enforced_when_configured(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway(jwt_issuer="https://auth.example", jwt_audience=("https://app.example",))
    cases = {
        make_token("alice", iss="https://auth.example", aud="https://app.example"): 200,
        make_token("alice", iss="https://auth.example", aud=["x", "https://app.example"]): 200,
        make_token("alice", iss="https://evil.example", aud="https://app.example"): 401,
        make_token("alice", iss="https://auth.example", aud="https://evil.example"): 401,
        make_token("alice", aud="https://app.example"): 401,
        make_token("alice", iss="https://auth.example"): 401,
    }
    async with ClientSession() as client:
        for token, status in cases.items():
            resp = await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(token))
            assert resp.status == status
    assert len(recorder.received) == 2


async def test_max_ttl_is_enforced_when_configured(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(jwt_max_ttl_s=900)
    async with ClientSession() as client:
        ok = await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(make_token("alice", ttl=900)))
        long = await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(make_token("alice", ttl=86400)))
    assert (ok.status, long.status) == (200, 401)
    assert len(recorder.received) == 1


async def test_rotated_user_secrets_are_all_accepted(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    old = "previous-user-token-secret-" + "p" * 24
    gw = await start_gateway(jwt_secret=f"{JWT_SECRET},{old}")
    async with ClientSession() as client:
        for secret in (JWT_SECRET, old):
            resp = await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(make_token(secret=secret)))
            assert resp.status == 200
    assert len(recorder.received) == 2


BAD_PATHS = [
    "/api/alice/../bob/tasks",
    "/api/alice/./tasks",
    "/api/bob/tasks/..",
    "/api/alice/%2e%2e/bob/tasks",
    "/api/alice%2Fbob/tasks",
    "/api/alice%2fbob/tasks",
    "/api/alice%5Cbob/tasks",
    "/api/alice\\..\\bob/tasks",
    "/api/alice/tasks%2F1",
    "/api/%61lice/tasks",
    "/api/alice%252e/tasks",
    "/api//alice/tasks",
    "/api/alice//tasks",
    "/api/alice/tasks//",
    "/api/alice/tasks//5",
    "/api/alice/tasks/5//",
    "/api/alice/tasks/./",
    "/api/alice/tasks/../",
    "/api/alice;x=1/tasks",
    "/api/alice/tasks;jsessionid=1",
    "/api/alice/tasks%",
    "/api/alice/tasks%zz",
    "//evil.example/api/alice/tasks",
    "http://evil.example/api/alice/tasks",
    "/api/alice/tasks?q=%zz",
    "/api/alice/tasks?q=a#b",
]


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_ambiguous_paths_are_400(recorder: Recorder, start_gateway: GatewayFactory, path: str) -> None:
    gw = await start_gateway()
    token = make_token("alice")
    response = await raw_request(
        gw.port,
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status_of(response) == 400, response[:200]
    assert recorder.received == []


async def test_non_ascii_path_bytes_are_400(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    token = make_token("alice")
    for path in (b"/api/al\xc3\xafce/tasks", b"/api/alice/tasks?q=\xff", b"/api/\xd0\xb0lice/tasks"):
        response = await raw_request(
            gw.port,
            b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n",
            timeout=2,
        )
        assert status_of(response) == 400, (path, response[:120])
    assert recorder.received == []


@pytest.mark.parametrize(
    "path", ["/", "/admin", "/api", "/api/alice", "/api/alice/tasks/0", "/api/alice/tasks/1/2", "/api/alice/other"]
)
async def test_unrouted_paths_are_404(recorder: Recorder, start_gateway: GatewayFactory, path: str) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.get(gw.make_url(path), headers=bearer(make_token("alice")))
        assert resp.status == 404
        assert await resp.json() == {"detail": "not found"}
    assert recorder.received == []


async def test_unsupported_methods_are_405(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        for method, path in (
            ("DELETE", "/api/alice/tasks"),
            ("POST", "/api/alice/tasks/1"),
            ("TRACE", "/api/alice/tasks"),
        ):
            resp = await client.request(method, gw.make_url(path), headers=bearer(make_token("alice")))
            assert resp.status == 405
            assert "Allow" in resp.headers
    assert recorder.received == []


async def test_oversize_body_is_413_before_reading(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(max_body_bytes=1024)
    token = make_token("alice")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 512

    async with ClientSession() as client:
        resp = await client.post(gw.make_url("/api/alice/tasks"), data=b"x" * 1025, headers=bearer(token))
        assert resp.status == 413
        resp = await client.post(gw.make_url("/api/alice/tasks"), data=chunks(), headers=bearer(token))
        assert resp.status == 413
        resp = await client.post(gw.make_url("/api/alice/tasks"), data=b"x" * 1024, headers=bearer(token))
        assert resp.status == 200
    # declared far beyond the limit, body never sent: answered at once
    response = await raw_request(
        gw.port,
        f"POST /api/alice/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Length: 1073741824\r\n\r\n".encode(),
    )
    assert status_of(response) == 413
    assert [len(r.body) for r in recorder.received] == [1024]


async def test_compressed_request_bodies_are_refused(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.post(
            gw.make_url("/api/alice/tasks"),
            data=b"\x1f\x8b\x08\x00",
            headers={**bearer(make_token("alice")), "Content-Encoding": "gzip"},
        )
        assert resp.status == 415
    assert recorder.received == []


async def test_upstream_refused_is_502(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(upstream_url="http://127.0.0.1:9")
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(make_token("alice")))
        assert resp.status == 502
        assert await resp.json() == {"detail": "upstream unavailable"}


async def test_upstream_timeout_is_504(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    never = asyncio.Event()

    async def reply(_request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    recorder.reply = reply
    gw = await start_gateway(upstream_timeout_s=0.3)
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(make_token("alice")))
        assert resp.status == 504
        assert await resp.json() == {"detail": "upstream timed out"}


async def test_health_and_readiness(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    down = await start_gateway(upstream_url="http://127.0.0.1:9")
    async with ClientSession() as client:
        assert (await client.get(gw.make_url("/healthz"))).status == 200
        assert (await client.get(gw.make_url("/readyz"))).status == 200
        assert (await client.get(down.make_url("/healthz"))).status == 200
        resp = await client.get(down.make_url("/readyz"))
        assert resp.status == 503
        assert (await resp.json())["checks"]["upstream"] is False
