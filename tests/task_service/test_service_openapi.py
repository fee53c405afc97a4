"""The published OpenAPI document cannot drift: it is what `taskgate openapi` generates now, and it names exactly
the routes the task service serves and the gateway forwards, with the request bodies the service parses.

(The document against the running system: tests/e2e/test_openapi.py; the gateway serving it:
tests/contract/test_openapi.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.routing import APIRoute
from pydantic import BaseModel

from gateway.openapi import DEFAULT_FILE
from gateway.policy.paths import USER_ID_PATTERN, NotRouted
from task_service.api import router
from task_service.schemas import TaskCreate, TaskPatch, TaskReplace
from taskgate import openapi
from taskgate.cli import main
from taskgate_assertion.format import USER_ID
from tests.gateway_fixtures import task_router
from tests.task_service.signer import Api

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))
    return document


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS
    }


def api_routes() -> set[tuple[str, str]]:
    return {(method, route.path) for route in router.routes if isinstance(route, APIRoute) for method in route.methods}


def test_the_committed_document_is_what_the_generator_produces_now() -> None:
    assert DEFAULT_FILE.read_text(encoding="utf-8") == openapi.render(openapi.generate()), (
        "gateway/tasks.openapi.json is stale: run `.venv/bin/taskgate openapi` and commit the result"
    )


def test_the_document_is_valid_against_the_openapi_3_1_schema() -> None:
    document = committed()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # raises on any violation of the specification's schema


def test_the_cli_command_writes_the_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "api.json"
    assert main(["openapi", "--output", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == committed()
    assert str(target) in capsys.readouterr().out


def test_every_operation_is_a_route_the_service_declares_and_no_route_is_missing() -> None:
    documented = operations(committed())
    assert documented == api_routes()
    assert len(documented) == 7


async def test_the_running_app_serves_exactly_the_documented_operations(api: Api) -> None:
    """Each documented operation reaches an /api route (401: it wants the assertion); any other method is 405."""
    documented = operations(committed())
    for path in {path for _, path in documented}:
        concrete = path.replace("{user_id}", "alice").replace("{id}", "7")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            response = await api.request(method, concrete, user=None)
            expected = 401 if (method, path) in documented else 405
            assert response.status_code == expected, (method, path)


def test_every_path_is_routed_by_the_gateway_with_exactly_the_documented_methods() -> None:
    document = committed()
    for path, item in document["paths"].items():
        concrete = path.replace("{user_id}", "alice").replace("{id}", "7")
        route = task_router().locate(concrete).route
        assert route.template.label == path
        assert route.methods == {method.upper() for method in item if method in HTTP_METHODS}, path


def test_path_parameters_have_the_forms_the_gateway_routes() -> None:
    parameters = committed()["components"]["parameters"]
    assert parameters["user_id"]["schema"]["pattern"] == f"^{USER_ID_PATTERN}$"
    assert USER_ID.pattern == USER_ID_PATTERN  # the service accepts exactly what the gateway routes
    located = task_router().locate(f"/api/alice/tasks/{openapi.MAX_TASK_ID}")
    assert located.route.template.label == "/api/{user_id}/tasks/{id}"
    with pytest.raises(NotRouted):
        task_router().locate(f"/api/alice/tasks/{openapi.MAX_TASK_ID + 1}")
    with pytest.raises(NotRouted):
        task_router().locate(f"/api/{'a' * 129}/tasks")
    id_schemas = [
        parameter["schema"]
        for item in committed()["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
        for parameter in operation.get("parameters", ())
        if parameter.get("in") == "path" and parameter.get("name") == "id"
    ]
    assert len(id_schemas) == 5
    for schema in id_schemas:
        assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, openapi.MAX_TASK_ID)


@pytest.mark.parametrize(
    ("method", "path", "model"),
    [
        ("post", "/api/{user_id}/tasks", TaskCreate),
        ("put", "/api/{user_id}/tasks/{id}", TaskReplace),
        ("patch", "/api/{user_id}/tasks/{id}", TaskPatch),
    ],
)
def test_request_bodies_are_the_models_the_service_parses(method: str, path: str, model: type[BaseModel]) -> None:
    document = committed()
    body = document["paths"][path][method]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
    assert document["components"]["schemas"][model.__name__] == model.model_json_schema()


def test_put_documents_that_left_out_fields_are_kept() -> None:
    replace = committed()["components"]["schemas"]["TaskReplace"]
    assert replace["required"] == ["title"]
    assert replace["additionalProperties"] is False
    assert "default" not in replace["properties"]["completed"]
    assert replace["properties"]["completed"]["type"] == "boolean"  # null is refused, so not offered


def test_the_bearer_scheme_applies_to_every_operation() -> None:
    document = committed()
    assert document["openapi"].startswith("3.1.")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The Better Auth JWT of the user the path names.",
    }
    assert document["security"] == [{"bearerAuth": []}]
    for item in document["paths"].values():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                assert "security" not in operation  # no operation opts out
                assert {"401", "403"} <= set(operation["responses"])
                assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
