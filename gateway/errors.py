"""The one error shape every gateway answer uses: JSON `{"detail": …}` with the status the contract names."""

from __future__ import annotations

from collections.abc import Mapping

from .http.messages import Reply, json_reply


class GatewayError(Exception):
    """Raised anywhere on the request path; the handler turns it into a response, never into a 500."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def error_response(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Reply:
    """Build the JSON error body; `detail` is always a fixed gateway phrase, never client input."""
    return json_reply(status, {"detail": detail}, list((headers or {}).items()))
