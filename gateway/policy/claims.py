"""Claim references (`org.id`) and the three rules that use them: `match`, `require` and `headers`.

A token's claims are JSON, so a claim can be any shape. Only strings and numbers (and lists of them) are
ever compared, each as text: a string as itself, an integer (or a float without a fraction) in decimal. A
boolean is not a number, a fraction never equals anything, and a claim of any other shape — missing, null,
an object, a list holding anything but strings and numbers — never matches: a rule fails closed on a claim
it cannot read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

# Claim names as issuers write them (`sub`, `org_id`, `https:` namespaces aside): dotted steps into objects.
_STEP = re.compile(r"[A-Za-z0-9_:-]{1,128}")
MAX_DEPTH = 8
# Floats beyond this no longer hold every integer exactly, so "equal as text" would be a guess.
_EXACT_FLOAT = 2**53
# What a JSON object decodes to, and the read-only view the verifier shares claims through. Concrete types: an
# isinstance check against the Mapping ABC costs more than the rest of a `match` rule on every request.
_OBJECTS = (dict, MappingProxyType)


class ClaimRefError(ValueError):
    """A claim reference does not parse."""


@dataclass(frozen=True, slots=True)
class ClaimRef:
    """A dotted path into a token's claims, e.g. `org.id` → claims["org"]["id"]."""

    text: str
    steps: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ClaimRef:
        steps = tuple(text.split("."))
        if len(steps) > MAX_DEPTH or not all(_STEP.fullmatch(step) for step in steps):
            raise ClaimRefError(
                f"claim {text!r} is not a claim name or a dotted path of at most {MAX_DEPTH} names "
                "(letters, digits, '_', '-', ':')"
            )
        return cls(text, steps)

    def texts(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """The claim's comparable values: one for a string or number, the items of a list, else none."""
        value: Any = claims
        for step in self.steps:
            if not isinstance(value, _OBJECTS):
                return ()
            value = value.get(step)
        if type(value) is str:  # the usual claim (`sub`, an org id): no list to walk
            return (value,)
        return _comparable_texts(value)


def _comparable_texts(value: object) -> tuple[str, ...]:
    """The texts a claim value compares as: a string or number gives one, a list of them its items, and
    anything else none. A number with a fraction is a number, but equal to nothing, so it gives no text."""
    texts: list[str] = []
    for item in value if isinstance(value, list) else (value,):
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, bool):
            return ()
        elif isinstance(item, int):
            texts.append(str(item))
        elif isinstance(item, float):
            if item.is_integer() and abs(item) <= _EXACT_FLOAT:
                texts.append(str(int(item)))
        else:
            return ()
    return tuple(texts)


@dataclass(frozen=True, slots=True)
class MatchRule:
    """`match: {param: claim}`: the path parameter equals the claim, or one of its items."""

    param: str
    claim: ClaimRef

    def holds(self, params: Mapping[str, str], claims: Mapping[str, Any]) -> bool:
        return params[self.param] in self.claim.texts(claims)

    def describe(self) -> str:
        return f"match {{{self.param}}} = claim {self.claim.text}"


@dataclass(frozen=True, slots=True)
class RequireRule:
    """`require: {claim: [values]}`: the claim, or one of its items, is one of the values."""

    claim: ClaimRef
    values: frozenset[str]

    def holds(self, params: Mapping[str, str], claims: Mapping[str, Any]) -> bool:
        return not self.values.isdisjoint(self.claim.texts(claims))

    def describe(self) -> str:
        return f"require claim {self.claim.text} in [{', '.join(sorted(self.values))}]"


Rule = MatchRule | RequireRule


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """`headers: {Name: claim}`: the claim copied into an upstream request header."""

    name: str
    claim: ClaimRef

    def value(self, claims: Mapping[str, Any]) -> str | None:
        """The header value, or None (header absent) when the claim is missing, empty, of another shape, or
        holds anything that is not printable text: a claim can never add a line or a control byte to the
        upstream request. A list becomes `a, b` (RFC 9110 list syntax) unless an item holds a comma."""
        texts = self.claim.texts(claims)
        if not texts or not all(texts) or (len(texts) > 1 and any("," in text for text in texts)):
            return None
        value = ", ".join(texts)
        if not value.isprintable() or value != value.strip():
            return None
        return value
