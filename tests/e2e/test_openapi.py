"""The published OpenAPI document against the real system: schemathesis drives the real gateway in front of the
real task service with requests generated from `GET /openapi.json`, and every answer must be one the document
describes (status, content type, body schema, headers) and never a server error.

Bounded and reproducible: a few deterministic examples per operation (schemathesis' coverage and fuzzing
phases, valid and invalid input alike), no shrinking, and a generous deadline per example that only a hang
would exceed; the whole run takes seconds.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.openapi import DEFAULT_FILE
from tests.e2e.conftest import System

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES_PER_OPERATION = 30
DEADLINE_MS = 5000


# The committed document, the one the gateway serves (tests/contract/test_openapi.py): schemathesis needs it when
# the tests are collected, before any server runs.
schema = schemathesis.openapi.from_path(
    DEFAULT_FILE,
    config=schemathesis.config.SchemathesisConfig.from_dict(
        {
            "generation": {"max-examples": EXAMPLES_PER_OPERATION, "no-shrink": True, "deterministic": True},
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)


@schema.parametrize()
@settings(deadline=DEADLINE_MS, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_every_answer_is_one_the_document_describes(case: schemathesis.Case[Any], system: System) -> None:
    """With a valid token for the path's user, so requests reach the task service and its answers are checked."""
    token = system.token(str((case.path_parameters or {}).get("user_id")))
    case.call_and_validate(
        base_url=system.gateway.url, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=10
    )
