"""The task service's trust in the gateway: the shared verifier (`taskgate_assertion`) for audience
"task-service", plus the one rule of this service, that the path's user is the acting user."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import HTTPException, Request, status

from taskgate_assertion.fastapi import TrustGateway

AUDIENCE = "task-service"


def trust_gateway(secrets: Sequence[bytes]) -> TrustGateway:
    return TrustGateway(secrets, AUDIENCE)


async def acting_user(request: Request) -> str:
    """FastAPI dependency for every /api route: the verified user, who must own the path.

    It runs before the body is parsed (routes read their body through dependencies that depend on
    this one), so a request without a valid assertion learns nothing, not even about its input.
    """
    gateway: TrustGateway = request.app.state.gateway
    user = (await gateway.user(request)).user
    if user is None or request.path_params.get("user_id") != user:  # never None: gateway.user requires one
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="the path's user is not the acting user")
    return user
