"""compose.yaml: valid against the Compose Specification, scalable behind one port, and configured completely.

No Docker engine is needed: the file is checked against the compose-spec JSON schema (shipped inside the
check-jsonschema package, so nothing is fetched), and each service's final environment is fed to the code's
own settings loaders (the gateway's and the task service's pydantic models, the issuer's loadConfig in Node).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.settings import load_settings as load_gateway_settings
from task_service.settings import load_settings as load_task_service_settings
from tests.deploy.catalog import (
    BETTER_AUTH_DIR,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    GATEWAY_VARS,
    HAPROXY_CFG,
    TASK_SERVICE_VARS,
    better_auth_vars,
    settings_environment,
    strong_secret,
)
from tests.deploy.compose_env import MissingVariable, bare_references, interpolate, read_env_file, references

PYTHON_SERVICES = {"gateway": GATEWAY_VARS, "task-service": TASK_SERVICE_VARS}


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


@cache
def raw_compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


@cache
def filled_env() -> dict[str, str]:
    """The operator's .env: the example with every required (empty) secret filled in, each one different."""
    env = read_env_file(ENV_EXAMPLE)
    return {key: value or strong_secret() for key, value in env.items()}


def compose() -> dict[str, Any]:
    """A fresh copy each call: tests may change it."""
    resolved: dict[str, Any] = interpolate(raw_compose(), filled_env())
    return resolved


def service_env(name: str) -> dict[str, str]:
    environment = compose()["services"][name].get("environment", {})
    assert isinstance(environment, dict), f"{name}: write environment as a mapping"
    return {key: str(value) for key, value in environment.items()}


def test_compose_file_matches_the_compose_specification() -> None:
    jsonschema.validate(compose(), compose_schema())


def test_the_schema_check_rejects_a_malformed_service() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["gateway"]["ports"] = [{"published": "8080", "target": "not-a-port"}]
    broken["services"]["gateway"]["restart_policy"] = "always"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, compose_schema())


def test_every_interpolated_variable_is_documented_in_env_example_and_vice_versa() -> None:
    assert bare_references(raw_compose()) == []
    used = set(references(raw_compose()))
    documented = set(read_env_file(ENV_EXAMPLE))
    assert used - documented == set(), "used in compose.yaml but missing from deploy/.env.example"
    assert documented - used == set(), "documented in deploy/.env.example but unused by compose.yaml"


def test_env_example_holds_no_secret_and_compose_refuses_to_start_without_one() -> None:
    example = read_env_file(ENV_EXAMPLE)
    demanded = {name for name, no_default in references(raw_compose()).items() if no_default}
    assert {"TASKGATE_INTERNAL_SECRET", "BETTER_AUTH_SECRET", "POSTGRES_PASSWORD"} <= demanded
    for name in demanded:
        assert example[name] == "", f"{name} must be left empty in the committed example"
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw_compose(), {**filled_env(), name: ""})


def test_git_ignores_the_real_env_file_but_not_the_example() -> None:
    def ignored(path: str) -> bool:
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=COMPOSE_FILE.parent, timeout=30, check=False)
        assert result.returncode in (0, 1)
        return result.returncode == 0

    assert ignored(".env")
    assert not ignored(str(ENV_EXAMPLE.relative_to(COMPOSE_FILE.parent)))


def test_gateway_replicas_share_one_published_port_through_the_load_balancer() -> None:
    services = compose()["services"]
    assert "ports" not in services["gateway"], "a fixed host port per gateway replica breaks --scale"
    assert "container_name" not in services["gateway"]
    assert services["gateway"]["expose"] == ["8080", "9090"]
    lb = services["lb"]
    assert [str(p).rsplit(":", 1)[-1] for p in lb["ports"]] == ["8080"]
    mounted = {volume.split(":")[1] for volume in lb["volumes"]}
    assert "/usr/local/etc/haproxy/haproxy.cfg" in mounted
    gateway = service_env("gateway")
    config = HAPROXY_CFG.read_text()
    # One backend slot per replica, discovered through Docker's DNS under the service name.
    assert f"server-template gateway 1-16 gateway:{gateway['GATEWAY_PORT']}" in config
    assert "nameserver dns 127.0.0.11:53" in config
    assert "option httpchk GET /readyz" in config
    assert "bind :8080" in config


def test_haproxy_accepts_its_configuration() -> None:
    """The real HAProxy parses the file (scripts/system-deps.sh installs it)."""
    assert shutil.which("haproxy"), "haproxy missing: run scripts/system-deps.sh"
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_load_balancer_answers_its_own_errors_in_the_project_error_shape() -> None:
    answers = re.findall(
        r"^\s*http-error status (\d+) content-type application/json string '(.*)'$", HAPROXY_CFG.read_text(), re.M
    )
    assert {"502", "503", "504"} <= {status for status, _ in answers}
    for _, body in answers:
        assert list(json.loads(body)) == ["detail"]


def test_only_the_load_balancer_and_the_issuer_are_published() -> None:
    services = compose()["services"]
    assert {name for name, service in services.items() if "ports" in service} == {"lb", "better-auth"}


def test_postgres_keeps_its_data_in_a_named_volume() -> None:
    document = compose()
    mounts = document["services"]["postgres"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in mounts
    assert "pgdata" in document["volumes"]


@pytest.mark.parametrize("service", sorted(PYTHON_SERVICES))
def test_python_services_are_given_only_settings_the_code_reads(service: str) -> None:
    unknown = set(service_env(service)) - PYTHON_SERVICES[service]
    assert unknown == set(), f"{service} is given variables its code never reads"


def test_the_issuer_is_given_only_settings_it_reads() -> None:
    assert set(service_env("better-auth")) - better_auth_vars() == set()


def test_gateway_and_task_service_accept_their_compose_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with settings_environment(monkeypatch, service_env("gateway")):
        gateway = load_gateway_settings()
    with settings_environment(monkeypatch, service_env("task-service")):
        service = load_task_service_settings()
    # The assertion the gateway signs is one the service accepts.
    assert gateway.internal_secrets[0] in service.internal_secret_keys
    assert gateway.upstream_url == f"http://task-service:{service.port}"
    assert gateway.jwks_url is not None
    assert gateway.jwks_url.startswith("http://better-auth:")
    assert service.database.get_backend_name() == "postgresql"
    assert service.database.host == "postgres"
    assert service.database.database == compose()["services"]["postgres"]["environment"]["POSTGRES_DB"]
    # HAProxy must wait longer than the gateway does, so a slow service yields the gateway's own 504.
    timeout_server = re.search(r"^\s*timeout server (\d+)s$", HAPROXY_CFG.read_text(), re.M)
    assert timeout_server is not None
    assert gateway.upstream_timeout_s < int(timeout_server[1])


def test_the_gateway_trusts_exactly_the_tokens_the_compose_issuer_mints() -> None:
    """The issuer's own loadConfig (in Node) decides its issuer and audience; the gateway must expect them."""
    env = service_env("better-auth")
    script = (
        "import('./src/config.mjs').then(({ loadConfig }) => {"
        " const c = loadConfig(JSON.parse(process.argv[1]));"
        " console.log(JSON.stringify({ issuer: c.issuer, audience: c.audience, port: c.port,"
        " gatewayURL: c.gatewayURL, mode: c.mode })); })"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script, json.dumps(env)],
        cwd=BETTER_AUTH_DIR,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    issuer = json.loads(result.stdout)
    gateway = service_env("gateway")
    assert issuer["mode"] == "eddsa"
    assert gateway["GATEWAY_JWKS_URL"] == f"http://better-auth:{issuer['port']}/api/auth/jwks"
    assert gateway["GATEWAY_JWT_ISSUER"] == issuer["issuer"]
    assert gateway["GATEWAY_JWT_AUDIENCE"] == issuer["audience"]
    assert issuer["issuer"] in gateway["GATEWAY_CORS_ORIGINS"].split(",")
    published = compose()["services"]["lb"]["ports"][0].split(":")[0]
    assert issuer["gatewayURL"].endswith(f":{published}")


def test_gateway_leaves_the_rotation_before_it_stops_accepting_and_drains_before_sigkill() -> None:
    gateway = compose()["services"]["gateway"]
    env = service_env("gateway")
    drain_delay_s = float(env["GATEWAY_DRAIN_DELAY_S"])
    grace_s = float(gateway["stop_grace_period"].removesuffix("s"))
    assert grace_s > drain_delay_s + float(env["GATEWAY_SHUTDOWN_TIMEOUT_S"])
    # HAProxy marks a server down after `fall` failed checks `inter` apart; the delay must cover that.
    check = HAPROXY_CFG.read_text().split("default-server ")[1].split()
    inter_s = float(check[check.index("inter") + 1].removesuffix("s"))
    fall = int(check[check.index("fall") + 1])
    assert drain_delay_s >= inter_s * fall
