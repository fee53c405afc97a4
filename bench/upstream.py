"""The fixed answer every upstream in the bench gives, and the nginx config that serves it."""

from __future__ import annotations

import json
from pathlib import Path

FIXED_BODY = json.dumps(
    [
        {
            "id": 1,
            "user_id": "bench-user-00000",
            "title": "Write the benchmark",
            "description": None,
            "completed": False,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
    ],
    separators=(",", ":"),
)

_TEMPLATE = Path(__file__).with_name("nginx.conf")
JWKS_PATH = "/.well-known/jwks.json"


REVOCATIONS_PATH = "/revocations"


def render_nginx_conf(run_dir: Path, port: int, jwks_json: str, revocations_json: str) -> Path:
    """Write the nginx config (and the JWKS and revocation feed it serves) into `run_dir`; return its path."""
    for name, text in (("jwks.json", jwks_json), ("revocations.json", revocations_json)):
        (run_dir / name).write_text(text)
        (run_dir / name).chmod(0o644)
    text = (
        _TEMPLATE.read_text().replace("@DIR@", str(run_dir)).replace("@PORT@", str(port)).replace("@BODY@", FIXED_BODY)
    )
    conf = run_dir / "nginx.conf"
    conf.write_text(text)
    return conf
