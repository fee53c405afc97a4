"""Liveness and readiness probes; they need no assertion and reveal nothing but up/down."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    if await request.app.state.db.is_reachable():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"detail": "database unreachable"}, status_code=503)
