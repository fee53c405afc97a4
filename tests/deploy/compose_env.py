"""Compose's variable interpolation, enough of it to know what each container would be given.

compose.yaml takes its secrets and public addresses from .env as `${VAR}`, `${VAR:-default}` or
`${VAR:?message}`; resolving them here lets the tests hand each service's final environment to the code's own
settings loader, which is the only honest judge of whether the configuration is complete.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
_BARE = re.compile(r"\$(?!\{)[A-Za-z_]")


class MissingVariable(Exception):
    """A `${VAR:?…}` whose variable is unset or empty: compose refuses to start."""


def strings(value: Any) -> Iterator[str]:
    """Every string in a parsed document (keys too): where compose interpolates, unlike comments."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def references(document: Any) -> dict[str, bool]:
    """Variable name → whether compose demands it (no default given) rather than falling back to one."""
    found: dict[str, bool] = {}
    for match in (m for text in strings(document) for m in _REFERENCE.finditer(text)):
        required = match["op"] in (":?", "?") or match["op"] is None
        found[match["name"]] = found.get(match["name"], False) or required
    return found


def bare_references(document: Any) -> list[str]:
    """`$VAR` without braces: allowed by compose, but this project always braces (and these tests need it)."""
    return [m for text in strings(document) for m in _BARE.findall(text.replace("$$", ""))]


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Resolve every `${…}` in a parsed compose document the way compose does."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        # The colon forms treat an empty value as unset, as compose does.
        present = bool(current) if op in (":-", ":?") else current is not None
        if present:
            return str(current)
        if op in (":?", "?"):
            raise MissingVariable(f"{name}: {arg}")
        return arg if op in (":-", "-") else ""

    return _REFERENCE.sub(substitute, value)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a compose .env file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"{path.name}: not a KEY=value line: {line!r}"
        env[key.strip()] = value.strip()
    return env
