"""Gateway configuration, read from the environment once at start.

Every setting lives here so that an operator can read one file to know what the process obeys, and so that a
bad value stops the process before it takes traffic rather than failing on the first request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from . import openapi

MIN_SECRET_BYTES = 32
# An origin as the browser serialises it (RFC 6454 §6.1): http or https, a lower-case host, an optional port.
_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(?::[0-9]{1,5})?|https?://\[[0-9a-f:.]+\](?::[0-9]{1,5})?")


class ConfigError(Exception):
    """A setting is missing or unusable; the message names the variable to fix."""


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _secret_list(name: str, raw: SecretStr | None, file: Path | None) -> tuple[bytes, ...]:
    """Resolve `<VAR>` or `<VAR>_FILE` into a non-empty list of strong secrets (first one current)."""
    if raw is not None and file is not None:
        raise ConfigError(f"set only one of {name} and {name}_FILE")
    text = raw.get_secret_value() if raw is not None else None
    if file is not None:
        try:
            text = file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file} ({exc.strerror})") from None
    if not text:
        return ()
    secrets = tuple(part.strip().encode() for part in text.split(",") if part.strip())
    for secret in secrets:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{name} is too weak: each secret must be at least {MIN_SECRET_BYTES} bytes "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
    return secrets


def env_secret_list(name: str, environ: Mapping[str, str]) -> tuple[bytes, ...]:
    """The same resolution for a variable named elsewhere (a policy issuer's `secret_env`): NAME or NAME_FILE."""
    raw, file = environ.get(name), environ.get(f"{name}_FILE")
    return _secret_list(name, SecretStr(raw) if raw is not None else None, Path(file) if file is not None else None)


class GatewaySettings(BaseSettings):
    """Typed view of the GATEWAY_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    admin_port: int | None = Field(None, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    upstream_url: str = "http://127.0.0.1:8001"
    # The policy file (docs/policy.md): routes, upstreams and issuers as data; unset: the built-in default policy
    # (the task API at GATEWAY_UPSTREAM_URL, the issuer from GATEWAY_JWT_* / GATEWAY_JWKS_*).
    policy_file: Path | None = None
    upstream_timeout_s: float = Field(15.0, gt=0, le=600)
    upstream_connect_timeout_s: float = Field(3.0, gt=0, le=60)
    upstream_pool_size: int = Field(256, ge=1, le=10_000)
    max_body_bytes: int = Field(1024 * 1024, ge=0, le=1024 * 1024 * 1024)
    # Client deadlines (slowloris): a request head, a request body, and an idle keep-alive connection.
    header_timeout_s: float = Field(10.0, gt=0, le=600)
    body_timeout_s: float = Field(30.0, gt=0, le=3600)
    keepalive_timeout_s: float = Field(30.0, gt=0, le=3600)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path | None = None
    internal_secret: SecretStr | None = None
    internal_secret_file: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: Annotated[tuple[str, ...], NoDecode] = ()
    jwt_leeway_s: int = Field(30, ge=0, le=300)
    jwt_max_ttl_s: int | None = Field(None, gt=0)
    token_cache_size: int = Field(10_000, ge=0, le=1_000_000)

    jwks_url: str | None = None
    jwks_refetch_cooldown_s: float = Field(30.0, ge=0, le=3600)
    jwks_cache_s: float = Field(300.0, gt=0, le=86_400)
    jwks_timeout_s: float = Field(5.0, gt=0, le=60)
    jwks_max_bytes: int = Field(64 * 1024, ge=1024, le=4 * 1024 * 1024)

    # Revocations followed from the issuer's feed (gateway/auth/revocations.py); unset URL = off.
    revocation_url: str | None = None
    revocation_secret: SecretStr | None = None
    revocation_secret_file: Path | None = None
    revocation_poll_s: float = Field(1.0, ge=0.05, le=300)
    revocation_timeout_s: float = Field(2.0, gt=0, le=60)
    revocation_max_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    revocation_max_stale_s: float | None = Field(None, gt=0)

    rate_limit_per_s: float = Field(0.0, ge=0, le=1_000_000)
    rate_limit_burst: int = Field(20, ge=1, le=1_000_000)

    admin_host: str | None = None
    access_log: bool = True
    shutdown_timeout_s: float = Field(10.0, ge=0, le=300)
    drain_delay_s: float = Field(0.0, ge=0, le=300)
    log_level: str = "INFO"
    # The document served at GET /openapi.json; empty: none (the path is then a 404 like any other).
    openapi_file: Path | None = openapi.DEFAULT_FILE

    _user_secrets: tuple[bytes, ...] = ()
    _internal_secrets: tuple[bytes, ...] = ()
    _openapi_document: bytes | None = None
    _revocation_secrets: tuple[bytes, ...] = ()

    @field_validator("cors_origins", "jwt_audience", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Origins are compared exactly with the browser's `Origin`, which is always `scheme://host[:port]` in
        lower case: anything else (`null`, `*`, a path, a trailing slash) could never match a real page, or
        would match sandboxed and file pages that all send `null`."""
        for origin in value:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin as browsers send it: scheme://host[:port] in lower case, "
                    "without a path or a trailing slash ('null' and '*' are refused)"
                )
        return value

    @field_validator("openapi_file", "policy_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("upstream_url", "jwks_url", "revocation_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _resolve_secrets(self) -> GatewaySettings:
        user = _secret_list("GATEWAY_JWT_SECRET", self.jwt_secret, self.jwt_secret_file)
        internal = _secret_list("GATEWAY_INTERNAL_SECRET", self.internal_secret, self.internal_secret_file)
        if not internal:
            raise ConfigError("GATEWAY_INTERNAL_SECRET is not set (the task service's TASKS_INTERNAL_SECRET)")
        if not user and not self.jwks_url and self.policy_file is None:
            # With a policy file, its `issuers:` may be all there is; a file without them needs these (file.py).
            raise ConfigError("set GATEWAY_JWT_SECRET (HS256 shared with Better Auth) or GATEWAY_JWKS_URL")
        if set(user) & set(internal):
            raise ConfigError("GATEWAY_JWT_SECRET and GATEWAY_INTERNAL_SECRET must be different secrets")
        object.__setattr__(self, "_user_secrets", user)
        object.__setattr__(self, "_internal_secrets", internal)
        object.__setattr__(self, "_revocation_secrets", self._resolve_revocation_secrets(user + internal))
        return self

    def _resolve_revocation_secrets(self, others: tuple[bytes, ...]) -> tuple[bytes, ...]:
        secrets = _secret_list("GATEWAY_REVOCATION_SECRET", self.revocation_secret, self.revocation_secret_file)
        if self.revocation_url and not secrets:
            raise ConfigError("GATEWAY_REVOCATION_SECRET (the issuer's BA_REVOCATION_SECRET) is required with the URL")
        if secrets and not self.revocation_url:
            raise ConfigError("GATEWAY_REVOCATION_SECRET is set but GATEWAY_REVOCATION_URL is not")
        if any(not secret.isascii() or not secret.decode().isprintable() for secret in secrets):
            raise ConfigError("GATEWAY_REVOCATION_SECRET must be printable ASCII (it is sent as an HTTP header)")
        if set(secrets) & set(others):
            # It is sent to the issuer on every poll: it must not be a secret that mints or asserts identities.
            raise ConfigError("GATEWAY_REVOCATION_SECRET must differ from the JWT and internal secrets")
        return secrets

    @model_validator(mode="after")
    def _one_source_of_upstreams(self) -> GatewaySettings:
        """With a policy file, the file names every upstream and its URL; a GATEWAY_UPSTREAM_URL beside it would
        look like it mattered while requests went elsewhere, so the two together are refused."""
        if self.policy_file is not None and "upstream_url" in self.model_fields_set:
            raise ConfigError(
                "GATEWAY_UPSTREAM_URL is set, but GATEWAY_POLICY_FILE names the upstreams and their URLs: "
                "unset GATEWAY_UPSTREAM_URL (or the policy file)"
            )
        return self

    @model_validator(mode="after")
    def _load_openapi(self) -> GatewaySettings:
        if self.openapi_file is not None:
            try:
                object.__setattr__(self, "_openapi_document", openapi.load(self.openapi_file))
            except openapi.InvalidDocument as exc:
                raise ConfigError(f"GATEWAY_OPENAPI_FILE: {exc}") from None
        return self

    @property
    def user_secrets(self) -> tuple[bytes, ...]:
        """HS256 secrets shared with Better Auth; any verifies, so a rotation needs no downtime."""
        return self._user_secrets

    @property
    def internal_secrets(self) -> tuple[bytes, ...]:
        """Secrets for the gateway assertion; the first signs."""
        return self._internal_secrets

    @property
    def openapi_document(self) -> bytes | None:
        """The API description to publish at GET /openapi.json, read and checked at start."""
        return self._openapi_document

    @property
    def revocation_secret_value(self) -> bytes | None:
        """The bearer secret sent to the revocation feed (the first of a list); None when revocation is off."""
        return self._revocation_secrets[0] if self._revocation_secrets else None


def load_settings() -> GatewaySettings:
    """Read the environment, turning every validation failure into one readable ConfigError."""
    try:
        return GatewaySettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"GATEWAY_{'_'.join(str(p) for p in err['loc']).upper() or '?'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(problems) from None
