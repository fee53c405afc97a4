"""Waiting for a revocation to reach a gateway, bounded by what the feature promises (issue 16: 2 s)."""

from __future__ import annotations

import time

import httpx

# After a sign-out returns, every gateway refuses the session's tokens within this long.
REVOCATION_BOUND_S = 2.0
_INTERVAL_S = 0.02


def tasks_status(gateway_url: str, user_id: str, token: str) -> int:
    """The status of GET /api/{user_id}/tasks with token, on a fresh connection (any worker may answer)."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{gateway_url}/api/{user_id}/tasks", headers=headers, timeout=5.0).status_code


def refused_within(gateway_url: str, user_id: str, token: str, bound_s: float = REVOCATION_BOUND_S) -> int:
    """Ask until the gateway answers 401 or bound_s has passed; the last status (401 unless the bound was missed)."""
    deadline = time.monotonic() + bound_s
    while True:
        status = tasks_status(gateway_url, user_id, token)
        if status == 401 or time.monotonic() >= deadline:
            return status
        time.sleep(_INTERVAL_S)
