"""`python -m task_service` serves the API; `python -m task_service migrate` only migrates."""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn
from sqlalchemy.exc import InterfaceError, OperationalError

from task_service.app import create_app
from task_service.migrate import migrate
from task_service.observability import log_config
from task_service.settings import ConfigError, load_database_settings, load_settings


def _serve() -> int:
    settings = load_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http="httptools",
        loop="uvloop",
        proxy_headers=False,  # client addresses come from the gateway's headers, never trusted here
        server_header=False,
        date_header=True,
        access_log=False,  # one JSON line per request comes from ObservabilityMiddleware instead
        log_config=log_config(settings.log_level),
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        timeout_keep_alive=settings.keepalive_timeout_s,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m task_service", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    args = parser.parse_args(argv)
    try:
        if args.command == "migrate":
            return _migrate()
        return _serve()
    except ConfigError as exc:
        print(f"task_service: configuration error: {exc}", file=sys.stderr)
        return 2


def _migrate() -> int:
    settings = load_database_settings()
    try:
        revision = asyncio.run(migrate(settings))
    except (OSError, OperationalError, InterfaceError) as exc:
        # The URL may hold a password, and the driver's message may quote it: name the failure only.
        print(f"task_service: cannot reach the database ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(f"task_service: database schema at revision {revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
