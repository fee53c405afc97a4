"""docs/operations.md names only real settings and real metrics, and its rotation procedure never breaks traffic."""

from __future__ import annotations

import re
from itertools import pairwise, product

import pytest
import yaml
from prometheus_client import generate_latest

from gateway.http.streaming import STREAM_OUTCOMES
from gateway.ops.metrics import OUTCOMES
from gateway.pipeline import Pipeline
from gateway.policy.default import default_policy
from gateway.settings import GatewaySettings
from gateway.settings import load_settings as load_gateway_settings
from task_service.settings import load_settings as load_task_service_settings
from tests.deploy.catalog import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    GATEWAY_VARS,
    OPERATIONS_DOC,
    TASK_SERVICE_VARS,
    better_auth_vars,
    k8s_object,
    settings_environment,
    strong_secret,
)
from tests.deploy.compose_env import read_env_file

# Upper-case names in the doc that are neither our settings nor compose variables (NODE_ENV is Node's own).
NOT_SETTINGS = {"REPLACE_ME", "SO_REUSEPORT", "NODE_ENV"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def doc() -> str:
    return OPERATIONS_DOC.read_text()


def section(title: str) -> str:
    text = doc()
    start = text.index(f"\n{title}\n")
    following = re.search(r"\n#{1,3} ", text[start + len(title) + 2 :])
    return text[start : start + len(title) + 2 + following.start()] if following else text[start:]


def gateway_metric_families() -> set[str]:
    settings = GatewaySettings(internal_secret=strong_secret(), jwt_secret=strong_secret())
    metrics = Pipeline(settings, default_policy(settings)).metrics
    metrics.observe("/api/{user_id}/tasks", "GET", 200, None, 0.001)
    exposition = generate_latest(metrics.registry).decode()
    families = set(re.findall(r"^# TYPE (\S+) \w+$", exposition, re.MULTILINE))
    return {name for name in families if not name.endswith("_created")}


def test_every_setting_the_doc_names_is_read_by_the_code_or_documented_for_compose() -> None:
    named = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", doc()))
    known = GATEWAY_VARS | TASK_SERVICE_VARS | better_auth_vars() | set(read_env_file(ENV_EXAMPLE)) | NOT_SETTINGS
    assert named - known == set()
    # The doc covers the settings an operator must get right.
    assert {"GATEWAY_ADMIN_PORT", "GATEWAY_WORKERS", "GATEWAY_SHUTDOWN_TIMEOUT_S", "TASKS_DATABASE_URL"} <= named


def test_the_doc_lists_exactly_the_gateway_metrics() -> None:
    families = gateway_metric_families()
    named = set(re.findall(r"\btaskgate_gateway_[a-z_]+", doc()))
    series = families | {f"{family}{suffix}" for family in families for suffix in HISTOGRAM_SERIES}
    assert named - series == set(), "the doc names metrics the gateway does not export"
    assert families - named == set(), "the gateway exports metrics the doc does not describe"


def test_the_doc_lists_every_outcome_label() -> None:
    described = set(re.findall(r"`([a-z_]+)`", section("### Metrics")))
    assert set(OUTCOMES.values()) | STREAM_OUTCOMES <= described


def rotation_steps(title: str) -> list[str]:
    """The secret lists of the numbered steps, e.g. ['OLD,NEW', 'NEW,OLD', 'NEW']."""
    steps = re.findall(
        r"^\d\. \*\*.*?\*\*.*?`(?:[A-Z_]+=)?((?:OLD|NEW)(?:,(?:OLD|NEW))*)`", section(title), re.M | re.S
    )
    return [str(step) for step in steps]


def test_each_step_of_the_internal_secret_rotation_keeps_every_gateway_and_service_pair_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """During a rollout old and new processes mix: whatever mix, the signer's key is one the verifier accepts."""
    values = {"OLD": strong_secret(), "NEW": strong_secret()}
    documented = rotation_steps("### The internal secret (gateway → task service)")
    assert documented == ["OLD,NEW", "NEW,OLD", "NEW"]
    steps = ["OLD", *documented]

    def real(step: str) -> str:
        return ",".join(values[name] for name in step.split(","))

    def signing_key(step: str) -> bytes:
        env = {"GATEWAY_INTERNAL_SECRET": real(step), "GATEWAY_JWT_SECRET": strong_secret()}
        with settings_environment(monkeypatch, env):
            return load_gateway_settings().internal_secrets[0]

    def accepted(step: str) -> tuple[bytes, ...]:
        with settings_environment(monkeypatch, {"TASKS_INTERNAL_SECRET": real(step)}):
            return load_task_service_settings().internal_secret_keys

    for before, after in pairwise(steps):
        for gateway_step, service_step in product((before, after), repeat=2):
            assert signing_key(gateway_step) in accepted(service_step), (gateway_step, service_step)
    # And at the end the old secret is worthless.
    assert values["OLD"].encode() not in accepted(steps[-1])


def test_the_shutdown_timings_the_doc_quotes_are_the_deployed_ones() -> None:
    text = " ".join(doc().split())
    gateway = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["gateway"]
    pod = k8s_object("Deployment", "gateway")["spec"]["template"]["spec"]
    k8s_settings = k8s_object("ConfigMap", "gateway-config")["data"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][2]
    quoted = {
        r"`GATEWAY_DRAIN_DELAY_S` \(compose: (\d+) s": gateway["environment"]["GATEWAY_DRAIN_DELAY_S"],
        r"`GATEWAY_SHUTDOWN_TIMEOUT_S` \(compose (\d+) s": gateway["environment"]["GATEWAY_SHUTDOWN_TIMEOUT_S"],
        r"`GATEWAY_SHUTDOWN_TIMEOUT_S` \(compose \d+ s, Kubernetes (\d+) s": k8s_settings["GATEWAY_SHUTDOWN_TIMEOUT_S"],
        r"`stop_grace_period` \((\d+) s\)": gateway["stop_grace_period"].removesuffix("s"),
        r"`terminationGracePeriodSeconds` \((\d+) s\)": str(pod["terminationGracePeriodSeconds"]),
        r"The hook therefore pauses (\d+) s": pre_stop.split("time.sleep(")[1].rstrip(")"),
    }
    for pattern, deployed in quoted.items():
        match = re.search(pattern, text)
        assert match, pattern
        assert match[1] == str(deployed), pattern
