"""The Dockerfiles, checked without a Docker engine: base, user, pinned installs, ports, health check, command."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tomllib
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.catalog import (
    BETTER_AUTH_DIR,
    GATEWAY_VARS,
    TASK_SERVICE_VARS,
    better_auth_vars,
    k8s_object,
)
from tests.deploy.dockerfile import Stage, ignore_patterns, parse
from tests.support.processes import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
LOCK = REPO_ROOT / "requirements.lock"
# image → (Dockerfile, module it runs, the settings its code reads, the variables naming its ports)
PYTHON_IMAGES = {
    "gateway": ("Dockerfile.gateway", "gateway", GATEWAY_VARS, ("GATEWAY_PORT", "GATEWAY_ADMIN_PORT")),
    "task-service": ("Dockerfile.task-service", "task_service", TASK_SERVICE_VARS, ("TASKS_PORT",)),
}


def stages(image: str) -> list[Stage]:
    return parse(REPO_ROOT / "deploy" / PYTHON_IMAGES[image][0])


def locked_versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, _, rest = line.partition("==")
            pins[canonicalize_name(name)] = rest.split(";")[0].strip()
    return pins


def runtime_closure() -> dict[str, str]:
    """Every distribution the project needs at run time (extras followed), with its installed version."""
    found: dict[str, str] = {}
    pending = [(Requirement(r), frozenset[str]()) for r in PYPROJECT["project"]["dependencies"]]
    while pending:
        requirement, wanted_by_extras = pending.pop()
        contexts = wanted_by_extras or frozenset({""})
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in contexts):
            continue
        name = canonicalize_name(requirement.name)
        extras = frozenset(requirement.extras)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in found:
            continue
        dist = distribution(requirement.name)
        found[key] = dist.version
        pending += [(Requirement(r), extras) for r in dist.requires or ()]
    return {key.split("[")[0]: version for key, version in found.items()}


@pytest.mark.parametrize("image", sorted(PYTHON_IMAGES))
def test_python_images_build_on_slim_python_311_and_run_as_an_unprivileged_user(image: str) -> None:
    built = stages(image)
    assert [stage.base for stage in built] == ["python:3.11-slim"] * len(built)
    final = built[-1]
    user = final.last("USER").arguments
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER {user}: numeric and unprivileged"
    # Kubernetes' runAsNonRoot can only verify a numeric USER, and the manifests assume this one.
    pod_user = k8s_object("Deployment", image)["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert int(uid) == pod_user
    assert final.instructions.index(final.last("USER")) > max(final.instructions.index(i) for i in final.all("RUN")), (
        "every RUN of the final stage runs before USER drops root"
    )


@pytest.mark.parametrize("image", sorted(PYTHON_IMAGES))
def test_python_images_install_the_locked_dependencies_then_the_project_without_deps(image: str) -> None:
    build = stages(image)[0]
    assert {"pyproject.toml", "requirements.lock"} <= set(build.copied_sources())
    runs = [i.arguments for i in build.all("RUN")]
    install_deps = next(r for r in runs if "-c requirements.lock" in r)
    install_project = runs[-1]
    assert install_project.endswith("pip install --no-deps .")
    assert runs.index(install_deps) < runs.index(install_project)
    # The code goes in after the dependency layer, so a code change does not reinstall the dependencies.
    sources = build.copied_sources()
    assert sources.index("requirements.lock") < sources.index(PYTHON_IMAGES[image][1])


@pytest.mark.parametrize("image", sorted(PYTHON_IMAGES))
def test_python_images_copy_every_package_pip_will_look_for(image: str) -> None:
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= set(stages(image)[0].copied_sources())


@pytest.mark.parametrize("image", sorted(PYTHON_IMAGES))
def test_dockerignore_lets_every_copied_source_into_the_build_context(image: str) -> None:
    dockerfile = REPO_ROOT / "deploy" / PYTHON_IMAGES[image][0]
    patterns = ignore_patterns(dockerfile.with_name(dockerfile.name + ".dockerignore"))
    assert patterns[0] == "*", "an allow-list: nothing enters the context unless named"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert set(stages(image)[0].copied_sources()) <= allowed
    assert not any(name in allowed for name in (".venv", ".env", "data", "node_modules"))


@pytest.mark.parametrize("image", sorted(PYTHON_IMAGES))
def test_the_dependency_list_command_in_the_dockerfile_prints_the_runtime_dependencies(
    image: str, tmp_path: Path
) -> None:
    """Runs the Dockerfile's own one-liner (quoting included) against the real pyproject.toml."""
    command = next(i.arguments for i in stages(image)[0].all("RUN") if "tomllib" in i.arguments)
    words = shlex.split(command)
    code = words[words.index("-c") + 1]
    (tmp_path / "pyproject.toml").write_text((REPO_ROOT / "pyproject.toml").read_text())
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.splitlines() == PYPROJECT["project"]["dependencies"]


def test_the_lock_pins_every_runtime_dependency_of_the_images() -> None:
    """`pip install -r <runtime deps> -c requirements.lock` is only reproducible if the lock covers them all."""
    closure = runtime_closure()
    pins = locked_versions()
    assert {"aiohttp", "fastapi", "sqlalchemy", "greenlet", "cryptography", "asyncpg"} <= set(closure)
    assert {name: pins.get(name) for name in closure} == closure
    # The dev tools stay out of the images.
    assert not {"pytest", "mypy", "playwright", "ruff"} & set(closure)


@pytest.mark.parametrize("image", sorted(PYTHON_IMAGES))
def test_python_images_expose_their_ports_check_health_and_start_the_service(image: str) -> None:
    _, module, settings, port_vars = PYTHON_IMAGES[image]
    final = stages(image)[-1]
    env = final.env()
    service_env = {key for key in env if key.startswith(("GATEWAY_", "TASKS_"))}
    assert service_env <= settings
    assert {*port_vars, f"{port_vars[0].split('_')[0]}_HOST"} <= service_env
    assert env[f"{port_vars[0].split('_')[0]}_HOST"] == "0.0.0.0"
    assert set(final.last("EXPOSE").arguments.split()) == {env[var] for var in port_vars}
    check = " ".join(final.last("HEALTHCHECK").arguments.split())
    assert "/healthz" in check and port_vars[0] in check
    assert final.last("CMD").words() == ["python", "-m", module]


def test_better_auth_image_installs_from_its_lock_and_runs_as_node() -> None:
    (stage,) = parse(BETTER_AUTH_DIR / "Dockerfile")
    minimum = json.loads((BETTER_AUTH_DIR / "package.json").read_text())["engines"]["node"]
    assert stage.base.startswith("node:") and stage.base.endswith("-slim")
    assert int(stage.base.removeprefix("node:").split("-")[0]) >= int(minimum.removeprefix(">="))
    assert stage.last("USER").arguments == "node"
    sources = stage.copied_sources()
    assert {"package.json", "package-lock.json", ".npmrc"} <= set(sources)
    assert any(r.arguments.startswith("npm ci --omit=dev") for r in stage.all("RUN"))
    # Everything server.mjs loads at run time: itself, its modules and the static page.
    assert {"server.mjs", "src", "public"} <= set(sources)
    env = stage.env()
    assert set(env) <= better_auth_vars()
    assert stage.last("EXPOSE").arguments == env["BA_PORT"]
    assert any(f"chown node:node {Path(env['BA_DB_PATH']).parent}" in r.arguments for r in stage.all("RUN"))
    assert "/healthz" in stage.last("HEALTHCHECK").arguments
    assert stage.last("CMD").words() == ["node", "server.mjs"]
    ignored = ignore_patterns(BETTER_AUTH_DIR / ".dockerignore")
    assert "node_modules" in ignored and "data" in ignored
