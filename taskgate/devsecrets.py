"""Development secrets for `taskgate up`: generated once into a git-ignored file, reused afterwards.

Only used when the operator configured none, so a laptop gets a working system with no set-up while
production keeps reading its secrets from the environment (or `<VAR>_FILE`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEV_DIR = Path(".taskgate")
DEV_FILE = DEV_DIR / "dev-secrets.env"
NAMES = ("GATEWAY_JWT_SECRET", "TASKGATE_INTERNAL_SECRET", "BETTER_AUTH_SECRET", "TASKGATE_REVOCATION_SECRET")


def _read(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() in NAMES:
            values[name.strip()] = value.strip()
    return values


def load_or_create(path: Path = DEV_FILE) -> dict[str, str]:
    """Secrets from `path`, creating any that are missing with the OS's CSPRNG (file mode 0600)."""
    values = _read(path) if path.exists() else {}
    missing = [name for name in NAMES if len(values.get(name, "")) < 32]
    if missing:
        for name in missing:
            values[name] = secrets.token_urlsafe(48)
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / ".gitignore").write_text("*\n")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# taskgate development secrets (generated; never commit)\n")
            handle.writelines(f"{name}={values[name]}\n" for name in NAMES)
    return values
