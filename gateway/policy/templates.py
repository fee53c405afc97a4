"""Path templates such as `/api/{user_id}/tasks/{id:int}`, compiled into one anchored regex each.

A parameter is always a whole segment and its grammar can never hold `/`, `.`-only segments, `%` or `;`, so
a parameter value is exactly the bytes of one segment of a target that `gateway.policy.paths.check_target` already
accepted: nothing is decoded, and the value compared with a claim is the value the upstream routes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .paths import USER_ID_PATTERN, BadTarget, check_target

# `{name}`: the user-id grammar; `{name:int}`: the task-id grammar (no sign, no leading zero, fits int64);
# `{name:uuid}`: the canonical 8-4-4-4-12 form, all lower case or all upper case (never mixed, so one UUID has
# at most two spellings and a claim comparison cannot be dodged with a third).
_HEX_UUID = "{h}{{8}}-{h}{{4}}-{h}{{4}}-{h}{{4}}-{h}{{12}}"
GRAMMARS = {
    "": USER_ID_PATTERN,
    "int": r"[1-9][0-9]{0,17}",
    "uuid": f"(?:{_HEX_UUID.format(h='[0-9a-f]')}|{_HEX_UUID.format(h='[0-9A-F]')})",
}
_COMPILED_GRAMMARS = {kind: re.compile(pattern) for kind, pattern in GRAMMARS.items()}
# Parameter names become regex group names and claim-rule keys: identifiers only.
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})(?::([A-Za-z0-9_]*))?\}")
# A stand-in value per grammar, to run a template's literal text through the request-target checks.
_SAMPLES = {"": "x", "int": "1", "uuid": "00000000-0000-0000-0000-000000000000"}


class TemplateError(ValueError):
    """A path template does not parse; the message says why, in the operator's terms."""


@dataclass(frozen=True, slots=True)
class Param:
    """One `{name}` / `{name:int}` / `{name:uuid}` segment; `kind` is "", "int" or "uuid"."""

    name: str
    kind: str

    def accepts(self, text: str) -> bool:
        return _COMPILED_GRAMMARS[self.kind].fullmatch(text) is not None


Segment = str | Param


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template. Equal templates have equal text; `regex` is derived."""

    text: str
    segments: tuple[Segment, ...]
    regex: re.Pattern[str] = field(compare=False, repr=False)
    # The metrics and log label: the template without parameter types (`/api/{user_id}/tasks/{id}`), so the
    # default policy's labels are the ones dashboards already use. Laid out once: every request reads it.
    label: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        label = "".join("/" + (f"{{{s.name}}}" if isinstance(s, Param) else s) for s in self.segments)
        object.__setattr__(self, "label", label or "/")

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments if isinstance(s, Param))

    def match(self, path: str) -> dict[str, str] | None:
        """The parameter values when `path` (already checked) matches, else None."""
        found = self.regex.fullmatch(path)
        return None if found is None else found.groupdict()

    def covers(self, other: Template) -> bool:
        """Whether every path `other` matches is matched by this template too (so `other`, listed later,
        could never be reached)."""
        if len(self.segments) != len(other.segments):
            return False
        return all(_segment_covers(mine, theirs) for mine, theirs in zip(self.segments, other.segments, strict=True))


def _segment_covers(mine: Segment, theirs: Segment) -> bool:
    if isinstance(mine, str):
        return mine == theirs
    if isinstance(theirs, str):
        return mine.accepts(theirs)
    # Every int and every uuid is also a plain `{name}` value; otherwise only the same kind covers.
    return mine.kind == "" or mine.kind == theirs.kind


def parse_template(text: str) -> Template:
    """Parse and compile a template, or raise TemplateError naming the problem."""
    if not text.startswith("/"):
        raise TemplateError("a path template starts with '/'")
    if "?" in text or "#" in text:
        raise TemplateError("a path template has no query or fragment")
    if text != "/" and text.endswith("/"):
        # Requests lose one trailing slash before matching, so such a template would be an empty segment.
        raise TemplateError("a path template does not end with '/' (an empty or dot segment)")
    segments: list[Segment] = []
    names: set[str] = set()
    if text != "/":
        for raw in text[1:].split("/"):
            segment = _parse_segment(raw, names)
            segments.append(segment)
            if isinstance(segment, Param):
                names.add(segment.name)
    sample = "".join("/" + (_SAMPLES[s.kind] if isinstance(s, Param) else s) for s in segments) or "/"
    try:
        check_target(sample)
    except BadTarget as exc:
        # The same checks every request passes: a literal they refuse could never match anything.
        raise TemplateError(f"no request could match it: {exc}") from None
    return Template(text=text, segments=tuple(segments), regex=re.compile(pattern(tuple(segments))))


def pattern(segments: tuple[Segment, ...], prefix: str = "") -> str:
    """The regex for these segments; each parameter is the group `<prefix><name>` (a prefix keeps the groups
    of several templates apart when the router joins them into one alternation)."""
    return (
        "".join(
            "/" + (f"(?P<{prefix}{s.name}>{GRAMMARS[s.kind]})" if isinstance(s, Param) else re.escape(s))
            for s in segments
        )
        or "/"
    )


def _parse_segment(raw: str, seen: set[str]) -> Segment:
    if "{" not in raw and "}" not in raw:
        return raw
    param = _PARAM.fullmatch(raw)
    if param is None:
        raise TemplateError(
            f"segment {raw!r}: a parameter is a whole segment, {{name}}, {{name:int}} or {{name:uuid}}, "
            "with a name made of letters, digits and '_'"
        )
    name, kind = param.group(1), param.group(2)
    if kind is None:
        kind = ""
    elif kind not in ("int", "uuid"):
        raise TemplateError(f"parameter {name!r}: unknown type {kind!r} (use {{name}}, {{name:int}} or {{name:uuid}})")
    if name in seen:
        raise TemplateError(f"parameter {name!r} appears twice")
    return Param(name, kind)
