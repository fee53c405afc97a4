"""A request body that ends before it is complete is the client's error: a 400 in the service's log, never a 500.

Only a direct caller can send one (the gateway frames every body with Content-Length), so the tests speak raw
HTTP/1.1 to a real `python -m task_service`, whose parser (uvicorn + httptools) rejects a malformed chunk midway
and answers 400 on the wire itself; the application then finds the body cut off.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.wire import parse_responses, request
from tests.support.services import Service, new_secret, running_task_service
from tests.task_service.signer import claims_for, sign

pytestmark = pytest.mark.slow

TARGET = "/api/alice/tasks"


@pytest.fixture(scope="module")
def secret() -> str:
    return new_secret()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, secret: str) -> Iterator[Service]:
    work: Path = tmp_path_factory.mktemp("cut-off-body")
    with running_task_service(work, secret) as running:
        yield running


def _send(service: Service, data: bytes, *, half_close: bool) -> bytes:
    """Send data, optionally end the sending side, and read until the service closes the connection."""
    port = int(service.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _access_entry(service: Service, request_id: str) -> dict[str, object]:
    entry: dict[str, object] = json.loads(service.process.log_line(f'"request_id": "{request_id}"'))
    return entry


@pytest.mark.parametrize(
    ("body", "half_close", "answered"),
    [
        pytest.param(b'5\r\n{"tit\r\nZZ\r\n', False, 400, id="malformed-second-chunk-size"),
        pytest.param(b"zz\r\n", False, 400, id="malformed-first-chunk-size"),
        pytest.param(b'3\r\n{"tX0\r\n\r\n', False, 400, id="chunk-data-not-closed-by-crlf"),
        pytest.param(b'20\r\n{"title": "cut', True, None, id="client-closes-midway"),
    ],
)
def test_a_cut_off_body_is_logged_as_a_400_and_changes_nothing(
    service: Service, secret: str, body: bytes, half_close: bool, answered: int | None
) -> None:
    request_id = f"cut-off-{secrets.token_hex(6)}"
    head = request(
        "POST",
        TARGET,
        f"X-Gateway-Assertion: {sign(claims_for('POST', TARGET, 'alice'), secret=secret)}",
        "X-User-Id: alice",
        f"X-Request-Id: {request_id}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        close=False,
    )
    received = _send(service, head + body, half_close=half_close)
    if answered is None:
        assert received == b""
    else:
        assert [r.status for r in parse_responses(received)] == [answered]

    entry = _access_entry(service, request_id)
    assert (entry["status"], entry["route"], entry["method"]) == (400, "/api/{user_id}/tasks", "POST")
    log = service.process.log_text()
    assert "Exception in ASGI application" not in log
    assert '"level": "error"' not in log
    listing = httpx.get(
        service.url + TARGET, headers={"X-Gateway-Assertion": sign(claims_for("GET", TARGET, "alice"), secret=secret)}
    )
    assert (listing.status_code, listing.json()) == (200, [])
