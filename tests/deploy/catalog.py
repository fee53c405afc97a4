"""What the deployment files are checked against: the settings the code reads, and the files themselves.

The names come from the code (the pydantic settings models and the issuer's config loader), never from a
list kept here, so a setting renamed in the code makes the deployment tests fail until the files follow.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from task_service.settings import Settings as TaskServiceSettings
from tests.support.processes import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "compose.yaml"
ENV_EXAMPLE = REPO_ROOT / "deploy" / ".env.example"
HAPROXY_CFG = REPO_ROOT / "deploy" / "haproxy.cfg"
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"
BETTER_AUTH_DIR = REPO_ROOT / "deploy" / "better-auth"
BETTER_AUTH_CONFIG = BETTER_AUTH_DIR / "src" / "config.mjs"


def env_names(model: type[BaseSettings]) -> frozenset[str]:
    """Every variable a settings model reads: env_prefix + field name, and <NAME>_FILE for each secret."""
    prefix = str(model.model_config.get("env_prefix", ""))
    names = {f"{prefix}{name}".upper() for name in model.model_fields}
    secrets = {name for name, info in model.model_fields.items() if "SecretStr" in repr(info.annotation)}
    return frozenset(names | {f"{prefix}{name}_FILE".upper() for name in secrets})


GATEWAY_VARS = env_names(GatewaySettings)
TASK_SERVICE_VARS = env_names(TaskServiceSettings)


def better_auth_vars() -> frozenset[str]:
    """Variables the issuer's loadConfig reads: `env.NAME`, `(env, "NAME"` and, for secrets (secretFromEnv,
    secretList), NAME_FILE too."""
    source = BETTER_AUTH_CONFIG.read_text()
    names = set(re.findall(r"\benv\.([A-Z][A-Z0-9_]*)", source))
    names |= set(re.findall(r"\(env, \"([A-Z][A-Z0-9_]*)\"", source))
    names |= {f"{name}_FILE" for name in re.findall(r"secret(?:FromEnv|List)\(env, \"([A-Z][A-Z0-9_]*)\"", source)}
    return frozenset(names)


def strong_secret() -> str:
    return secrets.token_urlsafe(48)


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def k8s_objects() -> tuple[dict[str, Any], ...]:
    """Parsed once per run; callers that change a document deep-copy it first."""
    return tuple(doc for path in k8s_files() for doc in yaml_documents(path))


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


@contextmanager
def settings_environment(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> Iterator[None]:
    """Exactly `env` as the GATEWAY_*/TASKS_* environment, whatever the developer's shell exports."""
    with monkeypatch.context() as patch:
        for name in GATEWAY_VARS | TASK_SERVICE_VARS:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        yield
