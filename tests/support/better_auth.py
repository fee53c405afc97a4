"""Start the reference Better Auth issuer (deploy/better-auth) and use its HTTP API as a client would.

Its node_modules come from `npm ci` in deploy/better-auth, run by the Makefile / CI before the tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from .processes import REPO_ROOT, Launch, RunningProcess, clean_env, running_on_port

ISSUER_DIR = REPO_ROOT / "deploy" / "better-auth"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class BetterAuthUser:
    id: str
    email: str
    session_token: str


@dataclass
class Issuer:
    origin: str
    process: RunningProcess

    @property
    def jwks_url(self) -> str:
        return f"{self.origin}/api/auth/jwks"

    def _client(self) -> httpx.Client:
        # A browser sends its Origin with every auth POST; Better Auth checks it against baseURL.
        return httpx.Client(base_url=self.origin, headers={"Origin": self.origin}, timeout=10.0)

    def sign_up(self, name: str) -> BetterAuthUser:
        """Create a user with email + password; Better Auth signs them in at once."""
        email = f"{name}-{secrets.token_hex(4)}@example.com"
        with self._client() as client:
            response = client.post("/api/auth/sign-up/email", json={"name": name, "email": email, "password": PASSWORD})
        response.raise_for_status()
        return BetterAuthUser(response.json()["user"]["id"], email, response.headers["set-auth-token"])

    def sign_in(self, email: str) -> BetterAuthUser:
        with self._client() as client:
            response = client.post("/api/auth/sign-in/email", json={"email": email, "password": PASSWORD})
        response.raise_for_status()
        return BetterAuthUser(response.json()["user"]["id"], email, response.headers["set-auth-token"])

    def jwt(self, user: BetterAuthUser) -> str:
        """A fresh JWT for user, from /api/auth/token with the bearer() plugin's session token."""
        with self._client() as client:
            response = client.get("/api/auth/token", headers={"Authorization": f"Bearer {user.session_token}"})
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    def sign_out(self, user: BetterAuthUser) -> None:
        """End user's session, as its "Sign out" button would."""
        with self._client() as client:
            response = client.post(
                "/api/auth/sign-out", json={}, headers={"Authorization": f"Bearer {user.session_token}"}
            )
        response.raise_for_status()

    def revocations(self, secret: str | None, after: str | None = None) -> httpx.Response:
        """The revocation feed (GET /api/auth/revocations), with `secret` as its bearer credential."""
        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        params = {"after": after} if after is not None else {}
        with self._client() as client:
            return client.get("/api/auth/revocations", headers=headers, params=params)

    @property
    def revocations_url(self) -> str:
        return f"{self.origin}/api/auth/revocations"

    def revoke_sessions(self, user: BetterAuthUser) -> None:
        """End every session of user (Better Auth's revoke-sessions), as signing out everywhere would."""
        with self._client() as client:
            response = client.post(
                "/api/auth/revoke-sessions", json={}, headers={"Authorization": f"Bearer {user.session_token}"}
            )
        response.raise_for_status()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        with self._client() as client:
            response = client.get("/api/auth/jwks")
        response.raise_for_status()
        keys: dict[str, list[dict[str, str]]] = response.json()
        return keys


def issuer_env(port: int, db_path: Path, settings: Mapping[str, str]) -> dict[str, str]:
    return clean_env(
        {
            "BA_HOST": "127.0.0.1",
            "BA_PORT": str(port),
            "BA_DB_PATH": str(db_path),
            "BETTER_AUTH_SECRET": secrets.token_urlsafe(32),
            **settings,
        }
    )


@contextmanager
def running_issuer(
    work_dir: Path, settings: Mapping[str, str] | None = None, *, port: int | None = None, name: str = "issuer"
) -> Iterator[Issuer]:
    """The issuer on 127.0.0.1 with a database in work_dir; settings are its env vars (JWT_MODE, …).

    Give the port of a stopped issuer to restart it at the same URL; a new name gives it a new database,
    and so new keys.
    """

    def launch(chosen: int) -> Launch:
        env = issuer_env(chosen, work_dir / f"{name}.db", settings or {})
        return Launch(["node", "server.mjs"], env, f"http://127.0.0.1:{chosen}/healthz")

    with running_on_port(name, launch, work_dir, port=port, cwd=ISSUER_DIR) as (proc, chosen):
        yield Issuer(f"http://127.0.0.1:{chosen}", proc)


@contextmanager
def running_example_issuer(work_dir: Path, module: str, revocation_secret: str) -> Iterator[Issuer]:
    """A Better Auth server built from an example configuration (`deploy/better-auth/<module>`), not ours:
    served by test-fixtures/serve.mjs with its schema migrated, configured as Better Auth reads its environment."""

    def launch(chosen: int) -> Launch:
        origin = f"http://127.0.0.1:{chosen}"
        env = clean_env(
            {
                "BA_PORT": str(chosen),
                "BETTER_AUTH_URL": origin,
                "BETTER_AUTH_SECRET": secrets.token_urlsafe(32),
                "BA_REVOCATION_SECRET": revocation_secret,
            }
        )
        return Launch(["node", "test-fixtures/serve.mjs", module], env, f"{origin}/healthz")

    with running_on_port("example-issuer", launch, work_dir, cwd=ISSUER_DIR) as (proc, chosen):
        yield Issuer(f"http://127.0.0.1:{chosen}", proc)
