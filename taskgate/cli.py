"""Command line: `taskgate up`, `taskgate token`, `taskgate migrate`, `taskgate policy check|explain`,
`taskgate openapi`."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jwt

from gateway.policy.default import configured_policy
from gateway.policy.errors import PolicyError
from gateway.policy.explain import explain, inspect_token
from gateway.policy.match import Router
from gateway.policy.model import Policy
from gateway.settings import ConfigError, GatewaySettings, load_settings

from . import devsecrets
from .processes import Stack

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'15m' → 900; bare numbers are seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 900, 15m, 1h)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def mint_token(user_id: str, secret: str, ttl_s: int, issuer: str | None, audience: str | None) -> str:
    """An HS256 token shaped like Better Auth's (sub, iat, exp, optional iss/aud)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_s}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience.split(",")[0].strip()
    return jwt.encode(claims, secret, algorithm="HS256")


def _user_secret() -> str:
    configured = os.environ.get("GATEWAY_JWT_SECRET", "").split(",")[0].strip()
    return configured or devsecrets.load_or_create()["GATEWAY_JWT_SECRET"]


def cmd_token(args: argparse.Namespace) -> int:
    print(
        mint_token(
            args.user_id,
            _user_secret(),
            args.ttl,
            os.environ.get("GATEWAY_JWT_ISSUER"),
            os.environ.get("GATEWAY_JWT_AUDIENCE"),
        )
    )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    stack = Stack.from_environment(gateway_port=args.port, service_port=args.service_port)
    with stack:
        if not stack.start():
            return 1
        token = mint_token("demo-user", stack.user_secret, 3600, stack.issuer, stack.audience)
        print(stack.banner(token), flush=True)
        return stack.wait()


def cmd_migrate(_args: argparse.Namespace) -> int:
    return subprocess.call([sys.executable, "-m", "task_service", "migrate"])


def _policy(command: str, path: Path | None) -> tuple[GatewaySettings, Policy] | None:
    """The gateway's settings and the policy they and `path` describe (the same validation as at start), or
    None after printing the one-line error."""
    try:
        settings = load_settings()
        return settings, configured_policy(settings, path, os.environ)
    except (PolicyError, ConfigError) as exc:
        print(f"taskgate policy {command}: {exc}", file=sys.stderr)
        return None


def _summary(policy: Policy) -> list[str]:
    lines = [
        f"{policy.source}: ok — {len(policy.routes)} routes, upstreams: "
        f"{', '.join(u.name for u in policy.upstreams)}; issuers: {', '.join(i.name for i in policy.issuers)}"
    ]
    width = max(len(route.template.text) for route in policy.routes)
    for route in policy.routes:
        rules = "auth: none" if not route.auth_required else "; ".join(r.describe() for r in route.rules) or "token"
        lines.append(
            f"  {route.index:>2} {route.template.text:<{width}}  {', '.join(sorted(route.methods)):<24} "
            f"→ {route.upstream.name}  [{rules}]"
        )
    return lines


def cmd_policy_check(args: argparse.Namespace) -> int:
    loaded = _policy("check", args.file)
    if loaded is None:
        return 1
    print("\n".join(_summary(loaded[1])))
    return 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    loaded = _policy("explain", args.policy)
    if loaded is None:
        return 1
    settings, policy = loaded
    if args.issuer is not None and args.issuer not in {issuer.name for issuer in policy.issuers}:
        print(f"taskgate policy explain: --issuer {args.issuer!r} is not an issuer of the policy", file=sys.stderr)
        return 1
    token = sys.stdin.readline().strip() if args.token == "-" else args.token  # noqa: S105 - '-' is stdin
    presented = None
    if token:
        presented = asyncio.run(inspect_token(policy, token, issuer_hint=args.issuer, settings=settings))
    print("\n".join(explain(Router(policy), args.method, args.target, presented).lines))
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    # Imported here: this development command alone loads the gateway's and the service's code.
    from . import openapi

    path = openapi.write(args.output or openapi.OUTPUT)
    print(f"taskgate: wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the task service and the gateway together (SQLite, dev secrets)")
    up.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8080")))
    up.add_argument("--service-port", type=int, default=int(os.environ.get("TASKS_PORT", "8001")))
    up.set_defaults(func=cmd_up)
    token = sub.add_parser("token", help="mint an HS256 token for USER_ID with the configured secret")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=parse_duration, default=900, help="lifetime, e.g. 900, 15m, 1h")
    token.set_defaults(func=cmd_token)
    migrate = sub.add_parser("migrate", help="apply the task service's database migrations")
    migrate.set_defaults(func=cmd_migrate)
    policy = sub.add_parser("policy", help="check a policy file, or explain how a request would be treated")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_sub.add_parser("check", help="validate FILE as the gateway does at start (exit 0 or 1)")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_policy_check)
    explain_cmd = policy_sub.add_parser("explain", help="which route, which checks, which answer, what upstream")
    explain_cmd.add_argument("method", type=str.upper)
    explain_cmd.add_argument("target", help="the raw request target, e.g. /api/alice/tasks?status=all")
    explain_cmd.add_argument("--token", help="the bearer token to explain with ('-': read it from stdin)")
    explain_cmd.add_argument("--issuer", help="the issuer the token is from, when the policy cannot tell")
    explain_cmd.add_argument("--policy", type=Path, help="a policy file (default: the built-in default policy)")
    explain_cmd.set_defaults(func=cmd_policy_explain)
    spec = sub.add_parser("openapi", help="regenerate the OpenAPI document the gateway serves at /openapi.json")
    spec.add_argument("--output", type=Path, help="write here instead of gateway/tasks.openapi.json")
    spec.set_defaults(func=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
