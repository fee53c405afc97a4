"""`taskgate openapi`: the API as a frontend sees it through the gateway, as one OpenAPI 3.1 document.

The task service describes its own routes (`task_service/openapi.py`); this adds what the gateway does in front
of them: bearer authentication instead of the gateway's assertion, the path forms it routes, the statuses it
answers itself, and `X-Request-Id` on every answer. Only the `/api` paths, the ones the gateway forwards, are
kept. The result is committed as `gateway/tasks.openapi.json`, which the gateway serves at `GET /openapi.json`;
`tests/task_service/test_service_openapi.py` fails when the committed file is not what this produces now.

This is the one place that imports both the gateway and the task service: it describes how they meet.
"""

from __future__ import annotations

import copy
import json
import secrets
from importlib.metadata import version
from pathlib import Path
from typing import Any

from gateway.openapi import DEFAULT_FILE
from gateway.policy.paths import USER_ID_PATTERN
from task_service import openapi as service
from task_service.app import create_app
from task_service.settings import Settings

OUTPUT = DEFAULT_FILE
API_PREFIX = "/api/"
BEARER = "bearerAuth"
# The gateway routes ids of at most 18 digits without a leading zero (gateway/policy/paths.py).
MAX_TASK_ID = 10**18 - 1

DESCRIPTION = """\
The taskgate API, as a frontend calls it: every request goes through the gateway, which checks the bearer
token (a Better Auth JWT) and that the path's `user_id` is the token's `sub`, then forwards it to the task
service.

Every error is JSON `{"detail": …}`: a fixed phrase, or for a 422 a list of the problems with the input.
Answers carry `X-Request-Id` (the client's own, when it sent one of 1–128 characters of
`[A-Za-z0-9._:-]`). Besides the statuses listed per operation, the gateway answers 405 (with `Allow`) to a
method a path does not have, 408 when a request head or body is too slow and 417 to an `Expect` other than
`100-continue`. `OPTIONS` is the CORS preflight, answered by the gateway for the origins it allows. This
document itself is `GET /openapi.json`, served by the gateway without a token.
"""

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

# What the gateway answers itself, on every /api operation (docs/contract.md, "Status codes"). 431 is here
# because valid input can cause it: a `q` of 1000 characters, percent-encoded, can exceed the request line limit.
GATEWAY_RESPONSES: dict[str, dict[str, Any]] = {
    "400": {
        "description": "Malformed request: a request target over 2048 bytes or with empty or dot segments, "
        "`%`-escapes in the path or a malformed query string, credentials in the query string, a malformed or "
        "repeated `Authorization` header, or a header value with control characters.",
        "content": _ERROR,
    },
    "401": {
        "description": "No bearer token, or one that cannot be used: malformed, bad signature, wrong algorithm, "
        "expired, or the wrong issuer or audience.",
        "headers": {"WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}},
        "content": _ERROR,
    },
    "403": {"description": "The path's `user_id` is not the token's `sub`.", "content": _ERROR},
    "429": {
        "description": "Too many requests from this user (only when the gateway's rate limit is on).",
        "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
        "content": _ERROR,
    },
    "431": {
        "description": "The request line or a header is over 8190 bytes, or there are more than 100 headers.",
        "content": _ERROR,
    },
    "502": {"description": "The task service could not be reached or answered malformed.", "content": _ERROR},
    "504": {"description": "The task service did not answer in time.", "content": _ERROR},
}
NOT_ROUTED = "a path the gateway does not route (a `user_id` or `id` not of the documented form)"
GATEWAY_BODY_RESPONSES: dict[str, dict[str, Any]] = {
    "413": {"description": "The body is larger than the gateway accepts (1 MiB by default).", "content": _ERROR},
    "415": {"description": "The body has a `Content-Encoding` other than `identity`.", "content": _ERROR},
}
GATEWAY_HEADERS: dict[str, Any] = {
    "X-Request-Id": {
        "description": "The request's id, also in the gateway's and the task service's logs; absent only from "
        "the answer to a request that could not be read as HTTP (some 400s, the 431).",
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {
        "description": 'The bearer challenge: `Bearer realm="taskgate"`, with `error="invalid_token"` when a token '
        "was presented.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait.", "required": True, "schema": {"type": "integer", "minimum": 0}},
}


def service_document() -> dict[str, Any]:
    """The task service's own description of its app (a throw-away secret: the app is never served)."""
    settings = Settings(internal_secret=secrets.token_urlsafe(32), migrate_on_start=False)
    return service.describe(create_app(settings))


def _operation(operation: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = operation["responses"]
    not_found = responses.get("404")
    responses.update(copy.deepcopy(GATEWAY_RESPONSES))
    responses["404"] = {
        "description": f"{not_found['description']} Also answered to {NOT_ROUTED}."
        if not_found
        else f"Answered to {NOT_ROUTED}.",
        "content": _ERROR,
    }
    if "requestBody" in operation:
        responses.update(copy.deepcopy(GATEWAY_BODY_RESPONSES))
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-Id"] = {"$ref": "#/components/headers/X-Request-Id"}
    for parameter in operation.get("parameters", ()):
        if parameter.get("in") == "path" and parameter.get("name") == "id":
            parameter["schema"]["maximum"] = MAX_TASK_ID
    operation.pop("security", None)  # the document's bearer scheme applies
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def generate() -> dict[str, Any]:
    """The published document, built from the service's description and the gateway's own answers."""
    document = service_document()
    paths = {
        path: {method: value if method == "parameters" else _operation(value) for method, value in item.items()}
        for path, item in document["paths"].items()
        if path.startswith(API_PREFIX)
    }
    components = document["components"]
    components["parameters"]["user_id"]["schema"]["pattern"] = f"^{USER_ID_PATTERN}$"
    components["headers"].update(GATEWAY_HEADERS)
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The Better Auth JWT of the user the path names.",
        }
    }
    return {
        "openapi": document["openapi"],
        "info": {"title": "taskgate API", "version": version("taskgate"), "description": DESCRIPTION},
        "security": [{BEARER: []}],
        "paths": paths,
        "components": components,
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write(path: Path = OUTPUT) -> Path:
    path.write_text(render(generate()), encoding="utf-8")
    return path
