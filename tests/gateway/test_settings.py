"""Start-up configuration: a missing or weak secret stops the gateway with a message naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.openapi import DEFAULT_FILE
from gateway.settings import ConfigError, GatewaySettings, load_settings
from tests.support.processes import REPO_ROOT, clean_env

STRONG = "s" * 16 + "t" * 16 + "u" * 8
OTHER = "v" * 20 + "w" * 20


def run_gateway(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway"], env=clean_env(env), capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"GATEWAY_JWT_SECRET": STRONG}, "GATEWAY_INTERNAL_SECRET"),
        ({"GATEWAY_INTERNAL_SECRET": STRONG}, "GATEWAY_JWT_SECRET"),
        ({"GATEWAY_JWT_SECRET": "short-secret", "GATEWAY_INTERNAL_SECRET": OTHER}, "GATEWAY_JWT_SECRET"),
        ({"GATEWAY_JWT_SECRET": STRONG, "GATEWAY_INTERNAL_SECRET": STRONG}, "must be different"),
        ({"GATEWAY_JWT_SECRET": STRONG, "GATEWAY_INTERNAL_SECRET": OTHER, "GATEWAY_PORT": "http"}, "GATEWAY_PORT"),
        (
            {"GATEWAY_JWT_SECRET": STRONG, "GATEWAY_INTERNAL_SECRET": OTHER, "GATEWAY_UPSTREAM_URL": "ftp://x"},
            "GATEWAY_UPSTREAM_URL",
        ),
        (
            {"GATEWAY_JWT_SECRET": STRONG, "GATEWAY_INTERNAL_SECRET": OTHER, "GATEWAY_OPENAPI_FILE": "/nonexistent"},
            "GATEWAY_OPENAPI_FILE",
        ),
    ],
)
def test_bad_configuration_stops_the_process(env: dict[str, str], names: str) -> None:
    result = run_gateway(env)
    assert result.returncode == 2
    assert names in result.stderr
    assert "Traceback" not in result.stderr
    for value in env.values():
        if len(value) >= 32:
            assert value not in result.stderr + result.stdout


def test_secrets_can_come_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jwt").write_text(STRONG + "\n")
    (tmp_path / "internal").write_text(f"{OTHER},{STRONG[::-1]}\n")
    monkeypatch.setenv("GATEWAY_JWT_SECRET_FILE", str(tmp_path / "jwt"))
    monkeypatch.setenv("GATEWAY_INTERNAL_SECRET_FILE", str(tmp_path / "internal"))
    settings = load_settings()
    assert settings.user_secrets == (STRONG.encode(),)
    assert settings.internal_secrets == (OTHER.encode(), STRONG[::-1].encode())


def test_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_JWT_SECRET_FILE"):
        GatewaySettings(jwt_secret_file=tmp_path / "missing", internal_secret=OTHER)


def test_value_and_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "jwt").write_text(STRONG)
    with pytest.raises(ConfigError, match="only one of GATEWAY_JWT_SECRET and GATEWAY_JWT_SECRET_FILE"):
        GatewaySettings(jwt_secret=STRONG, jwt_secret_file=tmp_path / "jwt", internal_secret=OTHER)


def test_jwks_alone_is_enough() -> None:
    settings = GatewaySettings(jwks_url="http://127.0.0.1:3000/api/auth/jwks", internal_secret=OTHER)
    assert settings.user_secrets == ()


def test_the_published_api_document_is_the_committed_one_by_default() -> None:
    document = GatewaySettings(jwt_secret=STRONG, internal_secret=OTHER).openapi_document
    assert document is not None
    assert json.loads(document) == json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))


def test_an_empty_openapi_file_setting_publishes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_JWT_SECRET", STRONG)
    monkeypatch.setenv("GATEWAY_INTERNAL_SECRET", OTHER)
    monkeypatch.setenv("GATEWAY_OPENAPI_FILE", "")
    assert load_settings().openapi_document is None


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (REPO_ROOT / "no-such-file.json", "cannot read"),
        (REPO_ROOT / "README.md", "is not JSON"),
        (REPO_ROOT / "deploy" / "better-auth" / "package.json", "not an OpenAPI 3 document"),
    ],
)
def test_an_openapi_file_that_cannot_be_published_is_refused(path: Path, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"GATEWAY_OPENAPI_FILE: .*{problem}"):
        GatewaySettings(jwt_secret=STRONG, internal_secret=OTHER, openapi_file=path)


def test_a_policy_file_with_its_own_issuers_needs_no_gateway_jwt_setting(tmp_path: Path) -> None:
    """GATEWAY_JWT_SECRET / GATEWAY_JWKS_URL are the default issuer; a file that names its issuers needs neither,
    and a file without `issuers:` still does (docs/policy.md)."""
    with_issuers = tmp_path / "with.yaml"
    with_issuers.write_text(
        'upstreams: {api: {url: "http://127.0.0.1:1"}}\n'
        'issuers: {ba: {jwks_url: "http://127.0.0.1:2/jwks"}}\n'
        "routes: [{path: /x, methods: [GET], upstream: api}]\n"
    )
    settings = GatewaySettings(internal_secret=OTHER, policy_file=with_issuers)
    assert settings.user_secrets == () and settings.jwks_url is None
    without = tmp_path / "without.yaml"
    without.write_text(
        'upstreams: {api: {url: "http://127.0.0.1:1"}}\nroutes: [{path: /x, methods: [GET], upstream: api}]\n'
    )
    result = run_gateway({"GATEWAY_INTERNAL_SECRET": OTHER, "GATEWAY_POLICY_FILE": str(without)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"gateway: policy error: {without}:1: no 'issuers' in the file and no default issuer "
        "(GATEWAY_JWT_SECRET or JWKS)"
    )


def test_without_a_policy_file_a_jwt_setting_is_still_required() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_JWT_SECRET"):
        GatewaySettings(internal_secret=OTHER)


def test_an_upstream_url_beside_a_policy_file_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    with pytest.raises(ConfigError, match="GATEWAY_UPSTREAM_URL is set, but GATEWAY_POLICY_FILE"):
        GatewaySettings(internal_secret=OTHER, jwt_secret=STRONG, policy_file=policy, upstream_url="http://x:1")
    # the default URL is not "set": only an explicit GATEWAY_UPSTREAM_URL conflicts
    assert GatewaySettings(internal_secret=OTHER, jwt_secret=STRONG, policy_file=policy).policy_file == policy


@pytest.mark.parametrize(
    "origin", ["null", "*", "http://app.example/", "http://app.example/app", "app.example", "http://App.example"]
)
def test_a_cors_origin_no_browser_sends_is_refused_naming_the_variable(
    origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_JWT_SECRET", STRONG)
    monkeypatch.setenv("GATEWAY_INTERNAL_SECRET", OTHER)
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", f"http://ok.example, {origin}")
    with pytest.raises(ConfigError, match="GATEWAY_CORS_ORIGINS") as refused:
        load_settings()
    assert repr(origin) in str(refused.value)


def test_origins_as_browsers_send_them_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_JWT_SECRET", STRONG)
    monkeypatch.setenv("GATEWAY_INTERNAL_SECRET", OTHER)
    origins = "http://127.0.0.1:3000, https://app.example, http://[::1]:8080, http://localhost"
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", origins)
    assert load_settings().cors_origins == tuple(o.strip() for o in origins.split(","))
