"""Configuration: read from TASKS_* once, every mistake named, no value ever echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from task_service.settings import ConfigError, load_database_settings, load_settings

GOOD = "g" * 32
OTHER = "o" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["TASKS_INTERNAL_SECRET", "TASKS_INTERNAL_SECRET_FILE", "TASKS_DATABASE_URL", "TASKS_PORT"]:
        monkeypatch.delenv(name, raising=False)


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKS_INTERNAL_SECRET", GOOD)
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8001)
    assert settings.database_url == "sqlite+aiosqlite:///./data/tasks.db"
    assert settings.internal_secret_keys == (GOOD.encode(),)
    assert settings.migrate_on_start is True
    assert GOOD not in repr(settings)


def test_missing_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _error(monkeypatch).startswith("TASKS_INTERNAL_SECRET: must be set")


def test_short_secret_is_refused_without_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, TASKS_INTERNAL_SECRET="short-secret-value")
    assert "TASKS_INTERNAL_SECRET" in message and "32 bytes" in message
    assert "short-secret-value" not in message


def test_secret_list_accepts_each_and_checks_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKS_INTERNAL_SECRET", f"{GOOD}, {OTHER}")
    assert load_settings().internal_secret_keys == (GOOD.encode(), OTHER.encode())
    message = _error(monkeypatch, TASKS_INTERNAL_SECRET=f"{GOOD},tiny-one")
    assert "TASKS_INTERNAL_SECRET" in message and "tiny-one" not in message


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(f"{GOOD},{OTHER}\n")
    monkeypatch.setenv("TASKS_INTERNAL_SECRET_FILE", str(path))
    assert load_settings().internal_secret_keys == (GOOD.encode(), OTHER.encode())


def test_secret_file_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    message = _error(monkeypatch, TASKS_INTERNAL_SECRET_FILE=str(tmp_path / "absent"))
    assert message.startswith("TASKS_INTERNAL_SECRET_FILE: cannot read the file")
    (tmp_path / "s").write_text(GOOD)
    message = _error(monkeypatch, TASKS_INTERNAL_SECRET_FILE=str(tmp_path / "s"), TASKS_INTERNAL_SECRET=GOOD)
    assert "only one of" in message and GOOD not in message


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgres://u:pw@db/tasks", "postgresql+asyncpg://u:pw@db/tasks"),
        ("postgresql://u@db:5433/tasks", "postgresql+asyncpg://u@db:5433/tasks"),
        ("postgresql+asyncpg://u@db/tasks", "postgresql+asyncpg://u@db/tasks"),
    ],
)
def test_database_url_switches_to_async_drivers(monkeypatch: pytest.MonkeyPatch, given: str, used: str) -> None:
    monkeypatch.setenv("TASKS_DATABASE_URL", given)
    assert load_database_settings().database_url == used


def test_unsupported_database_url_hides_password(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, TASKS_INTERNAL_SECRET=GOOD, TASKS_DATABASE_URL="mysql://u:hunter2@db/x")
    assert message.startswith("TASKS_DATABASE_URL:") and "hunter2" not in message


def test_bad_port(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _error(monkeypatch, TASKS_INTERNAL_SECRET=GOOD, TASKS_PORT="http").startswith("TASKS_PORT:")


def test_migrate_does_not_need_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_database_settings().db_pool_size == 5
