"""The reference issuer itself: it refuses bad settings, and serves only the page and Better Auth."""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.support.better_auth import ISSUER_DIR, issuer_env, running_issuer
from tests.support.processes import free_port

from .tokens import segments

pytestmark = pytest.mark.slow

GOOD_SECRET = "s" * 32


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"BETTER_AUTH_SECRET": "too short"}, "BETTER_AUTH_SECRET must be set and at least 32 bytes"),
        ({"JWT_MODE": "rs256"}, "JWT_MODE must be one of eddsa, hs256"),
        ({"JWKS_ALG": "HS256"}, "JWKS_ALG must be one of EdDSA, ES256, RS256, PS256"),
        ({"JWT_MODE": "hs256"}, "GATEWAY_JWT_SECRET (JWT_MODE=hs256) must be set"),
        ({"JWT_MODE": "hs256", "GATEWAY_JWT_SECRET": GOOD_SECRET}, "must differ from BETTER_AUTH_SECRET"),
        ({"BA_JWT_TTL_S": "15m"}, "BA_JWT_TTL_S must be a positive integer"),
        ({"GATEWAY_URL": "javascript:alert(1)"}, "GATEWAY_URL must be an http(s) URL"),
        ({"BA_REVOCATION_SECRET": "too short"}, "BA_REVOCATION_SECRET must be set and at least 32 bytes"),
        ({"BA_REVOCATION_SECRET": f"{'r' * 32},short"}, "BA_REVOCATION_SECRET must be set and at least 32 bytes"),
        ({"BA_REVOCATION_SECRET": GOOD_SECRET}, "BA_REVOCATION_SECRET must differ from BETTER_AUTH_SECRET"),
        ({"BA_EXTRA_STATIC_DIR": "/nonexistent/app"}, "BA_EXTRA_STATIC_DIR must be a directory"),
    ],
)
def test_bad_settings_stop_the_issuer(settings: dict[str, str], message: str, tmp_path: Path) -> None:
    env = issuer_env(free_port(), tmp_path / "a.db", {"BETTER_AUTH_SECRET": GOOD_SECRET, **settings})
    done = subprocess.run(["node", "server.mjs"], cwd=ISSUER_DIR, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "a.db").exists()


def test_page_config_and_headers(tmp_path: Path) -> None:
    gateway_url = "http://127.0.0.1:9"
    with (
        running_issuer(tmp_path, {"GATEWAY_URL": gateway_url}) as issuer,
        httpx.Client(base_url=issuer.origin) as client,
    ):
        page = client.get("/")
        assert page.status_code == 200
        assert 'id="task-list"' in page.text
        csp = page.headers["Content-Security-Policy"]
        assert f"connect-src 'self' {gateway_url};" in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert client.get("/config.json").json() == {"gatewayURL": gateway_url}
        assert client.get("/app.js").headers["Content-Type"].startswith("text/javascript")
        for path in ("/server.mjs", "/src/config.mjs", "/%2e%2e/server.mjs", "/package.json"):
            assert client.get(path).status_code == 404, path
        assert client.post("/").status_code == 405


def test_an_extra_static_dir_is_served_under_app(tmp_path: Path) -> None:
    """BA_EXTRA_STATIC_DIR (a testing aid) adds its files under /app/, read at start like the page's own."""
    app_dir = tmp_path / "built"
    (app_dir / "nested").mkdir(parents=True)
    (app_dir / "index.html").write_text("<p>own frontend</p>")
    (app_dir / "app.js").write_text("export {};")
    (app_dir / "secret.env").write_text("X=1")
    (app_dir / "nested" / "deep.js").write_text("export {};")
    with (
        running_issuer(tmp_path, {"BA_EXTRA_STATIC_DIR": str(app_dir)}) as issuer,
        httpx.Client(base_url=issuer.origin) as client,
    ):
        index = client.get("/app/")
        assert index.text == "<p>own frontend</p>"
        assert "connect-src 'self'" in index.headers["Content-Security-Policy"]
        assert client.get("/app/index.html").text == index.text
        assert client.get("/app/app.js").headers["Content-Type"].startswith("text/javascript")
        assert 'id="task-list"' in client.get("/").text  # the demo page is still at /
        for path in ("/app", "/app/secret.env", "/app/nested/deep.js", "/app/../server.mjs", "/index.js"):
            assert client.get(path).status_code == 404, path


def test_hs256_mode_publishes_no_keys(tmp_path: Path) -> None:
    settings = {"JWT_MODE": "hs256", "GATEWAY_JWT_SECRET": GOOD_SECRET}
    with running_issuer(tmp_path, settings) as issuer:
        assert httpx.get(issuer.jwks_url).status_code == 404
        assert issuer.process.stop() == 0  # SIGTERM closes the server and the database cleanly


def test_first_key_exists_before_the_first_request(tmp_path: Path) -> None:
    """The issuer mints its key at start, so a gateway's first JWKS fetch and the first sign-in cannot race
    into two "first" keys (Better Auth alone creates one lazily in both places)."""
    with running_issuer(tmp_path, name="keyed") as issuer:
        with closing(sqlite3.connect(f"file:{tmp_path / 'keyed.db'}?mode=ro", uri=True)) as db:
            stored = [row[0] for row in db.execute("SELECT id FROM jwks")]
        assert len(stored) == 1  # only /healthz has been asked so far
        user = issuer.sign_up("heidi")
        assert segments(issuer.jwt(user))[0]["kid"] == stored[0]
        assert [key["kid"] for key in issuer.jwks()["keys"]] == stored
