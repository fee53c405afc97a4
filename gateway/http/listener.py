"""The public listening socket: accepts connections into ClientConnection and drains them on shutdown."""

from __future__ import annotations

import asyncio
import socket

from .client_connection import ClientConnection, ConnectionLimits, Connections
from .messages import Handler

BACKLOG = 1024


class Listener:
    def __init__(self, handler: Handler, limits: ConnectionLimits) -> None:
        self._handler = handler
        self._limits = limits
        self.connections = Connections()
        self._server: asyncio.Server | None = None

    async def open(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Bind and start accepting; with `reuse_port`, several worker processes share the port (SO_REUSEPORT)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self._handler, self._limits, self.connections),
            host,
            port,
            reuse_port=reuse_port or None,
            backlog=BACKLOG,
        )

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("Listener.open() was not awaited")
        inet = next(s for s in self._server.sockets if s.family in (socket.AF_INET, socket.AF_INET6))
        return int(inet.getsockname()[1])

    async def close(self, timeout_s: float) -> None:
        """Stop accepting, let answers in progress finish (each ends its connection), then abort stragglers."""
        if self._server is not None:
            self._server.close()
        await self.connections.drain(timeout_s)
