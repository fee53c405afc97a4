"""deploy/k8s/: every manifest valid against the Kubernetes schemas, offline, and wired the way operations needs.

kubernetes-validate ships the OpenAPI-derived JSON schemas for each Kubernetes minor version inside its wheel,
so validation needs no cluster and no network. Strict mode also rejects unknown fields (a misspelt key is
otherwise silently dropped by the API server). Beyond the schema, the tests check what a schema cannot: that
probes, limits and security settings are present, that the settings named are the ones the code reads, and
that each process accepts the environment the manifests give it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from gateway.settings import ConfigError as GatewayConfigError
from gateway.settings import load_settings as load_gateway_settings
from task_service.settings import ConfigError as TaskServiceConfigError
from task_service.settings import load_settings as load_task_service_settings
from tests.deploy.catalog import (
    GATEWAY_VARS,
    K8S_DIR,
    TASK_SERVICE_VARS,
    k8s_files,
    k8s_object,
    k8s_objects,
    settings_environment,
    strong_secret,
    yaml_documents,
)

# The oldest minor version the manifests promise to work on, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
WORKLOADS = (("Deployment", "gateway"), ("Deployment", "task-service"), ("StatefulSet", "postgres"))
APP_LABEL = "app.kubernetes.io/name"
SETTINGS_OF = {"gateway": GATEWAY_VARS, "task-service": TASK_SERVICE_VARS}


def pod_spec(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = k8s_object(kind, name)["spec"]["template"]["spec"]
    return spec


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def main_container(name: str) -> dict[str, Any]:
    (container,) = (c for c in pod_spec("Deployment", name)["containers"] if c["name"] == name)
    return container


def config_map(name: str) -> dict[str, str]:
    data: dict[str, str] = k8s_object("ConfigMap", name)["data"]
    return data


def secret_data(name: str) -> dict[str, str]:
    data: dict[str, str] = k8s_object("Secret", name)["stringData"]
    return data


def container_env(name: str, container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """What the container's process sees: its ConfigMaps, then literal values and Secret references.

    Secrets mounted as files are written under `files_root` by the caller; here `_FILE` values stay paths.
    """
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_map(source["configMapRef"]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
    return env


def committed_secrets() -> dict[tuple[str, str], str]:
    """Every Secret key with its value as committed (placeholders)."""
    return {
        (secret["metadata"]["name"], key): value
        for secret in k8s_objects()
        if secret["kind"] == "Secret"
        for key, value in secret["stringData"].items()
    }


def realised_secrets() -> dict[tuple[str, str], str]:
    """The same keys with strong values, as an operator replacing the placeholders would set them.

    The database password appears twice (PostgreSQL's own and inside the task service's URL) and gets one
    value; every other secret its own.
    """
    password = strong_secret()
    realised = {}
    for ref, value in committed_secrets().items():
        own = value == "REPLACE_ME" and ref[1] != "password"
        realised[ref] = strong_secret() if own else value.replace("REPLACE_ME", password)
    return realised


def mount_secret_files(name: str, secrets: dict[tuple[str, str], str], root: Path) -> dict[str, Path]:
    """Write each Secret volume of a pod under `root`; returns mountPath → host directory."""
    spec = pod_spec("Deployment", name)
    volumes = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    mounts: dict[str, Path] = {}
    for mount in main_container(name)["volumeMounts"]:
        if mount["name"] not in volumes:
            continue
        directory = root / mount["name"]
        directory.mkdir()
        for (secret_name, key), value in secrets.items():
            if secret_name == volumes[mount["name"]]:
                (directory / key).write_text(value + "\n")
        mounts[mount["mountPath"]] = directory
    return mounts


def resolve_files(env: dict[str, str], mounts: dict[str, Path]) -> dict[str, str]:
    resolved = dict(env)
    for key, value in env.items():
        if key.endswith("_FILE"):
            (mount_path,) = (m for m in mounts if value.startswith(m + "/"))
            resolved[key] = str(mounts[mount_path] / value.removeprefix(mount_path + "/"))
    return resolved


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(version: str) -> None:
    objects = k8s_objects()
    assert len(objects) >= 15
    for document in objects:
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    deployment = k8s_object("Deployment", "gateway")
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {"httpGet": {"path": "/readyz"}}
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    for broken in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_kustomization_applies_every_manifest_into_the_namespace() -> None:
    (kustomization,) = yaml_documents(K8S_DIR / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in k8s_files())
    namespace = k8s_object("Namespace", kustomization["namespace"])
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    images = {image["name"] for image in kustomization["images"]}
    used = {c["image"] for kind, name in WORKLOADS for c in containers(pod_spec(kind, name))}
    assert {"taskgate-gateway", "taskgate-task-service"} == images & used


@pytest.mark.parametrize(("kind", "name"), WORKLOADS)
def test_workloads_have_probes_limits_and_a_restricted_security_context(kind: str, name: str) -> None:
    spec = pod_spec(kind, name)
    assert spec["automountServiceAccountToken"] is False
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    for container in containers(spec):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}, f"{container['name']} {bound}"
    for container in spec["containers"]:
        assert "livenessProbe" in container
        assert "readinessProbe" in container


@pytest.mark.parametrize("name", ["gateway", "task-service"])
def test_probes_use_health_for_liveness_and_readiness_for_readiness(name: str) -> None:
    container = main_container(name)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in port_names


@pytest.mark.parametrize("name", ["gateway", "task-service"])
def test_pods_drain_before_they_are_killed(name: str) -> None:
    """preStop pauses while endpoints are removed, then shutdown drains, all inside the grace period."""
    spec = pod_spec("Deployment", name)
    command = main_container(name)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    pause_s = float(command[2].split("time.sleep(")[1].rstrip(")"))
    assert pause_s >= 3
    settings = config_map("gateway-config")
    drain_s = float(settings.get("GATEWAY_DRAIN_DELAY_S", 0)) + float(settings["GATEWAY_SHUTDOWN_TIMEOUT_S"])
    assert spec["terminationGracePeriodSeconds"] > pause_s + drain_s


def test_gateway_metrics_are_scraped_from_the_admin_port_which_no_service_exposes() -> None:
    annotations = k8s_object("Deployment", "gateway")["spec"]["template"]["metadata"]["annotations"]
    admin_port = config_map("gateway-config")["GATEWAY_ADMIN_PORT"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == admin_port
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = {p["name"]: str(p["containerPort"]) for p in main_container("gateway")["ports"]}
    assert ports == {"http": config_map("gateway-config")["GATEWAY_PORT"], "admin": admin_port}
    service_ports = [p["targetPort"] for p in k8s_object("Service", "gateway")["spec"]["ports"]]
    assert service_ports == ["http"]


@pytest.mark.parametrize(("kind", "name"), WORKLOADS)
def test_services_select_their_pods_on_a_declared_port(kind: str, name: str) -> None:
    service = k8s_object("Service", name)
    labels = k8s_object(kind, name)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    declared = {p["name"] for c in pod_spec(kind, name)["containers"] for p in c["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= declared


def test_gateway_autoscales_and_keeps_a_replica_through_disruptions() -> None:
    hpa = k8s_object("HorizontalPodAutoscaler", "gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # CPU utilisation is measured against requests: without them the HPA cannot act.
    assert "cpu" in main_container("gateway")["resources"]["requests"]
    pdb = k8s_object("PodDisruptionBudget", "gateway")
    assert pdb["spec"]["selector"]["matchLabels"] == {APP_LABEL: "gateway"}
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_only_gateways_reach_the_task_service_and_only_it_reaches_postgres() -> None:
    policies = [o for o in k8s_objects() if o["kind"] == "NetworkPolicy"]
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert default_deny and default_deny[0]["spec"]["policyTypes"] == ["Ingress"]

    def ingress_rules(app: str) -> list[dict[str, Any]]:
        return [
            rule
            for p in policies
            if p["spec"]["podSelector"].get("matchLabels") == {APP_LABEL: app}
            for rule in p["spec"].get("ingress", [])
        ]

    for target, source, port in (("task-service", "gateway", 8001), ("postgres", "task-service", 5432)):
        rules = ingress_rules(target)
        assert rules, f"no ingress rule for {target}"
        for rule in rules:
            assert rule["from"] == [{"podSelector": {"matchLabels": {APP_LABEL: source}}}]
            assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
    gateway_ports = {str(p["port"]) for rule in ingress_rules("gateway") for p in rule["ports"]}
    settings = config_map("gateway-config")
    assert gateway_ports == {settings["GATEWAY_PORT"], settings["GATEWAY_ADMIN_PORT"]}
    egress = [
        rule
        for p in policies
        if p["spec"]["podSelector"].get("matchLabels") == {APP_LABEL: "task-service"}
        for rule in p["spec"].get("egress", [])
    ]
    assert {"podSelector": {"matchLabels": {APP_LABEL: "postgres"}}} in [peer for r in egress for peer in r["to"]]


def test_every_label_selector_in_a_network_policy_matches_a_workload() -> None:
    """A misspelt label selects nothing, silently: for an allow rule that is an outage, for a deny a hole."""
    pod_labels = [k8s_object(kind, name)["spec"]["template"]["metadata"]["labels"] for kind, name in WORKLOADS]
    selectors = []
    for policy in (o for o in k8s_objects() if o["kind"] == "NetworkPolicy"):
        selectors.append(policy["spec"]["podSelector"].get("matchLabels", {}))
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            peers = rule.get("from", []) + rule.get("to", [])
            selectors += [p["podSelector"]["matchLabels"] for p in peers if "namespaceSelector" not in p]
    for selector in selectors:
        assert any(selector.items() <= labels.items() for labels in pod_labels), selector


@pytest.mark.parametrize("name", ["gateway", "task-service"])
def test_manifests_name_only_settings_the_code_reads(name: str) -> None:
    secrets = realised_secrets()
    for container in containers(pod_spec("Deployment", name)):
        unknown = set(container_env(name, container, secrets)) - SETTINGS_OF[name]
        assert unknown == set(), f"{container['name']} is given variables its code never reads"


def environment_of(name: str, secrets: dict[tuple[str, str], str], root: Path) -> dict[str, str]:
    """The main container's environment with its Secret volumes written under `root`."""
    directory = root / name
    directory.mkdir()
    mounts = mount_secret_files(name, secrets, directory)
    return resolve_files(container_env(name, main_container(name), secrets), mounts)


def test_each_process_accepts_the_environment_its_manifest_gives_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The code's own loaders judge completeness: a required secret left out would raise ConfigError."""
    secrets = realised_secrets()
    with settings_environment(monkeypatch, environment_of("gateway", secrets, tmp_path)):
        gateway = load_gateway_settings()
    with settings_environment(monkeypatch, environment_of("task-service", secrets, tmp_path)):
        service = load_task_service_settings()
    assert gateway.internal_secrets[0] in service.internal_secret_keys
    assert gateway.user_secrets
    assert gateway.upstream_url == f"http://{k8s_object('Service', 'task-service')['metadata']['name']}:{service.port}"
    assert service.database.host == k8s_object("Service", "postgres")["metadata"]["name"]
    assert service.database.password == secrets[("taskgate-database", "password")]


def test_secret_templates_hold_only_placeholders_that_stop_the_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A forgotten REPLACE_ME must fail closed at start, never run with a secret published in this repo."""
    for secret in (o for o in k8s_objects() if o["kind"] == "Secret"):
        assert "data" not in secret, "base64 `data` could hide a real value; templates use stringData"
        assert all("REPLACE_ME" in value for value in secret["stringData"].values())
    committed = committed_secrets()
    gateway_env = environment_of("gateway", committed, tmp_path)
    with settings_environment(monkeypatch, gateway_env), pytest.raises(GatewayConfigError, match="too weak"):
        load_gateway_settings()
    service_env = environment_of("task-service", committed, tmp_path)
    with (
        settings_environment(monkeypatch, service_env),
        pytest.raises(TaskServiceConfigError, match="TASKS_INTERNAL_SECRET"),
    ):
        load_task_service_settings()


def test_the_same_internal_secret_reaches_both_sides() -> None:
    def secret_volumes(name: str) -> dict[str, str]:
        spec = pod_spec("Deployment", name)
        by_volume = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        return {
            m["mountPath"]: by_volume[m["name"]] for m in main_container(name)["volumeMounts"] if m["name"] in by_volume
        }

    def secret_behind(name: str, variable: str) -> str:
        (path,) = (e["value"] for e in main_container(name)["env"] if e["name"] == variable)
        (secret,) = (s for mount, s in secret_volumes(name).items() if path.startswith(mount + "/"))
        return secret

    assert secret_behind("gateway", "GATEWAY_INTERNAL_SECRET_FILE") == "taskgate-internal"
    assert secret_behind("task-service", "TASKS_INTERNAL_SECRET_FILE") == "taskgate-internal"
    assert secret_behind("gateway", "GATEWAY_JWT_SECRET_FILE") == "taskgate-jwt"
