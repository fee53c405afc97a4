"""The task service's configuration, read once from TASKS_* environment variables at start.

Everything that can be wrong with the configuration is found here, before a socket is bound or a
database touched, and reported as one line that names the variable (never its value: it may be a
secret or a URL with a password in it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "TASKS_"
MIN_SECRET_BYTES = 32
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/tasks.db"

# Plain driver names people paste from other tools, mapped to the async drivers this service uses.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class ConfigError(Exception):
    """A configuration problem, worded for the operator who has to fix the environment."""


class DatabaseSettings(BaseSettings):
    """What the service and `python -m task_service migrate` need to reach the database."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # repr=False: a PostgreSQL URL may carry a password.
    database_url: str = Field(default=DEFAULT_DATABASE_URL, repr=False)
    db_pool_size: int = Field(default=5, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    db_pool_timeout_s: float = Field(default=30.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the usual URL spellings but always run on an async driver we ship."""
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL") from None
        driver = _ASYNC_DRIVERS.get(url.drivername)
        if driver is None:
            raise ValueError("must be a sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db URL")
        return url.set(drivername=driver).render_as_string(hide_password=False)

    @property
    def database(self) -> URL:
        return make_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database.get_backend_name() == "sqlite"


class Settings(DatabaseSettings):
    """The whole service configuration."""

    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=1, le=65535)
    migrate_on_start: bool = True
    log_level: str = "INFO"
    # In-flight requests may finish for this long after SIGTERM.
    shutdown_timeout_s: int = Field(default=10, ge=0, le=300)
    # Longer than the gateway's idle upstream connections (4 s), so the gateway closes them first.
    keepalive_timeout_s: int = Field(default=30, ge=1, le=3600)
    # The list is comma-separated so secrets can be rotated: the gateway signs with its first one,
    # the service accepts any of them.
    internal_secret: Annotated[tuple[SecretStr, ...], NoDecode] = Field(default=(), validate_default=True)
    internal_secret_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _secret_from_file(cls, data: Any) -> Any:
        """Support TASKS_INTERNAL_SECRET_FILE (Docker/Kubernetes secrets) next to the plain variable."""
        if not isinstance(data, dict):
            return data
        path = data.pop("internal_secret_file", None)
        if path is None:
            return data
        if data.get("internal_secret"):
            raise ValueError(f"set only one of {ENV_PREFIX}INTERNAL_SECRET and {ENV_PREFIX}INTERNAL_SECRET_FILE")
        try:
            text = Path(str(path)).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{ENV_PREFIX}INTERNAL_SECRET_FILE: cannot read the file ({type(exc).__name__})") from None
        return {**data, "internal_secret": text.rstrip("\r\n")}

    @field_validator("internal_secret", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        if value is None or value == () or value == "":
            raise ValueError(
                f"must be set (or {ENV_PREFIX}INTERNAL_SECRET_FILE): the secret shared with the "
                f"gateway's GATEWAY_INTERNAL_SECRET, at least {MIN_SECRET_BYTES} bytes"
            )
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(","))
        return value

    @field_validator("internal_secret")
    @classmethod
    def _long_enough(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(s.get_secret_value().encode()) < MIN_SECRET_BYTES for s in value):
            raise ValueError(f"each comma-separated secret must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @property
    def internal_secret_keys(self) -> tuple[bytes, ...]:
        return tuple(s.get_secret_value().encode() for s in self.internal_secret)


def _describe(error: Any) -> str:
    """One error as 'VARIABLE: problem', without the offending value."""
    message = str(error["msg"]).removeprefix("Value error, ")
    loc = error.get("loc") or ()
    if not loc:
        return message
    return f"{ENV_PREFIX}{str(loc[0]).upper()}: {message}"


_T = TypeVar("_T", bound=DatabaseSettings)


def _read(kind: type[_T]) -> _T:
    try:
        return kind()
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(e) for e in exc.errors())) from None


def load_settings() -> Settings:
    """Read the environment once; raise ConfigError naming every variable that is wrong."""
    return _read(Settings)


def load_database_settings() -> DatabaseSettings:
    """Only the database part, for `migrate`, which must not need the service's secret."""
    return _read(DatabaseSettings)
