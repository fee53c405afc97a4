"""Claim references and the rules built on them: only strings and numbers (and lists of them) ever match."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.claims import ClaimRef, ClaimRefError, HeaderRule, MatchRule, RequireRule


@pytest.mark.parametrize("text", ["sub", "org.id", "a.b.c.d.e.f.g.h", "https:ns", "org_ids", "x-y"])
def test_claim_references_parse(text: str) -> None:
    assert ClaimRef.parse(text).steps == tuple(text.split("."))


@pytest.mark.parametrize("text", ["", ".", "a.", ".a", "a..b", "a b", "a/b", "a.b.c.d.e.f.g.h.i", "é", "x" * 129])
def test_malformed_claim_references_are_refused(text: str) -> None:
    with pytest.raises(ClaimRefError):
        ClaimRef.parse(text)


@pytest.mark.parametrize(
    ("claims", "texts"),
    [
        ({"org": {"id": "acme"}}, ("acme",)),
        ({"org": {"id": 42}}, ("42",)),
        ({"org": {"id": 42.0}}, ("42",)),
        ({"org": {"id": -7}}, ("-7",)),
        ({"org": {"id": 10**30}}, (str(10**30),)),
        ({"org": {"id": ["a", 1, "b"]}}, ("a", "1", "b")),
        ({"org": {"id": []}}, ()),
        ({"org": {"id": True}}, ()),  # a boolean is not a number
        ({"org": {"id": [True]}}, ()),
        ({"org": {"id": ["a", None]}}, ()),  # a list holding anything else is not a list of strings/numbers
        ({"org": {"id": ["a", {"b": 1}]}}, ()),
        ({"org": {"id": [["a"]]}}, ()),
        ({"org": {"id": None}}, ()),
        ({"org": {"id": {"x": "acme"}}}, ()),
        ({"org": {}}, ()),
        ({"org": "acme"}, ()),  # a step into something that is not an object
        ({"org": ["acme"]}, ()),
        ({}, ()),
        ({"org.id": "acme"}, ()),  # dots always separate steps
    ],
)
def test_a_claim_compares_as_text_only_when_it_is_a_string_number_or_list_of_them(
    claims: dict[str, Any], texts: tuple[str, ...]
) -> None:
    assert ClaimRef.parse("org.id").texts(claims) == texts


def test_a_fraction_is_a_number_that_equals_nothing() -> None:
    rule = RequireRule(ClaimRef.parse("level"), frozenset({"1", "1.5"}))
    assert not rule.holds({}, {"level": 1.5})
    assert rule.holds({}, {"level": [1.5, 1]})  # still a list of numbers: the integer item can match
    assert not rule.holds({}, {"level": 2.0**60})  # too large to be an exact integer


@pytest.mark.parametrize(
    ("claim", "param", "holds"),
    [
        ("alice", "alice", True),
        ("alice", "Alice", False),
        ("alice", "alic", False),
        (["acme", "globex"], "globex", True),
        (["acme", "globex"], "initech", False),
        ("acme,globex", "acme", False),  # a comma-separated string is one value
        (7, "7", True),
        (7, "07", False),
        (True, "True", False),
        (True, "true", False),
        (None, "None", False),
    ],
)
def test_match_compares_the_parameter_with_the_claim_or_its_items(claim: Any, param: str, holds: bool) -> None:
    rule = MatchRule("org", ClaimRef.parse("orgs"))
    assert rule.holds({"org": param}, {"orgs": claim}) is holds


def test_match_with_a_missing_claim_never_holds() -> None:
    assert not MatchRule("org", ClaimRef.parse("orgs")).holds({"org": "acme"}, {})


@pytest.mark.parametrize(
    ("claim", "holds"),
    [
        ("admin", True),
        ("owner", True),
        ("member", False),
        (["member", "admin"], True),
        (["member"], False),
        ([], False),
        ("Admin", False),
        (None, False),
        ({"admin": True}, False),
        (["admin", None], False),
    ],
)
def test_require_holds_when_the_claim_or_one_of_its_items_is_allowed(claim: Any, holds: bool) -> None:
    rule = RequireRule(ClaimRef.parse("role"), frozenset({"owner", "admin"}))
    assert rule.holds({}, {"role": claim}) is holds


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("a@example.com", "a@example.com"),
        ("Zoë", "Zoë"),
        (42, "42"),
        (["admin", "owner"], "admin, owner"),
        (["admin"], "admin"),
        (["a,b", "c"], None),  # the list could not be read back
        ("a,b", "a,b"),  # one string is copied as it is
        ("", None),  # absent, never empty
        ([], None),
        ([""], None),
        (None, None),
        (True, None),
        ({"x": 1}, None),
        ("a\r\nX-User-Id: bob", None),  # never a new line upstream
        ("a\x00b", None),
        ("a\tb", None),
        ("a\x7fb", None),
        ("a\u2028b", None),
        (" padded", None),
        ("padded ", None),
    ],
)
def test_a_header_gets_a_claim_only_as_safe_printable_text(claim: Any, value: str | None) -> None:
    assert HeaderRule("X-Claim", ClaimRef.parse("c")).value({"c": claim}) == value


def test_a_header_for_a_missing_claim_is_absent() -> None:
    assert HeaderRule("X-Claim", ClaimRef.parse("c.d")).value({"c": {}}) is None
