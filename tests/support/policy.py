"""Run the test suites with a policy file loaded: TASKGATE_TEST_POLICY_FILE=deploy/policy.example.yaml.

The shared gateway fixtures (tests/gateway_fixtures.py, tests/support/services.py) then start every gateway
with GATEWAY_POLICY_FILE set to a copy of that file whose upstream URLs point at the test's upstream, instead
of GATEWAY_UPSTREAM_URL and the built-in default policy: the same tests, the policy read from the file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import yaml

TEST_POLICY_ENV = "TASKGATE_TEST_POLICY_FILE"


def policy_file_under_test(upstream_url: str) -> Path | None:
    """The policy file under test pointed at `upstream_url`, or None when TASKGATE_TEST_POLICY_FILE is unset."""
    source = os.environ.get(TEST_POLICY_ENV)
    if not source:
        return None
    text = Path(source).read_text()
    for upstream in yaml.safe_load(text)["upstreams"].values():
        text = text.replace(f'"{upstream["url"]}"', f'"{upstream_url}"')
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"taskgate-test-policy-{digest}.yaml"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(path)  # atomic: parallel test processes never read half a file
    return path
