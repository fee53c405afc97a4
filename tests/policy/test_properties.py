"""For random policies, targets, methods, issuers and claims, the router and `authorise` allow a request only
when an independent model of the semantics (written here from docs/policy.md, sharing no code with the
matcher) allows it, and refuse it with the same outcome otherwise.

Bounded: 400 examples, no deadline, derandomised so a run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.policy.claims import ClaimRef, MatchRule, RequireRule
from gateway.policy.match import Forbidden, IssuerNotAccepted, MethodNotAllowed, Router, authorise, check_method
from gateway.policy.model import Issuer, Policy, Route, Upstream
from gateway.policy.paths import BadTarget, NotRouted
from gateway.policy.templates import parse_template

BOUNDED = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
LITERALS = ["a", "b", "orgs", "7", UUID]
# Segment text a target may hold: literals, parameter values of every grammar, near misses, and attacks.
SEGMENTS = [
    *LITERALS, "x", "A", "a_b-c", "01", "0", "42", "1" * 18, "1" * 19, UUID.upper(), UUID[:9] + UUID[9:].upper(),
    "a" * 128, "a" * 129, "a.b", "~", "..", ".", "", "%2e", "a;b", "a%2fb", "é",
]  # fmt: skip
VALID = {"": ["a", "b", "7", "x", "A"], "int": ["7", "42"], "uuid": [UUID, UUID.upper()]}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ISSUER_NAMES = ["i1", "i2"]
CLAIMS = ["c1", "c2", "n.c3"]
UPSTREAM = Upstream("u", "http://127.0.0.1:1")


@dataclass(frozen=True)
class Spec:
    """A route as the test describes it: segments are ("lit", text) or ("param", name, kind)."""

    segments: tuple[tuple[str, ...], ...]
    methods: frozenset[str]
    issuers: tuple[str, ...]
    match: tuple[tuple[str, str], ...]
    require: tuple[tuple[str, frozenset[str]], ...]
    auth: bool


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    segments: list[tuple[str, ...]] = []
    for position in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            segments.append(("lit", draw(st.sampled_from(LITERALS))))
        else:
            segments.append(("param", f"p{position}", draw(st.sampled_from(["", "int", "uuid"]))))
    params = [s[1] for s in segments if s[0] == "param"]
    auth = draw(st.integers(0, 4)) > 0
    match = tuple((p, draw(st.sampled_from(CLAIMS))) for p in params if auth and draw(st.booleans()))
    require = tuple(
        (claim, frozenset(draw(st.lists(st.sampled_from(["a", "b", "7", "x"]), min_size=1, max_size=2))))
        for claim in CLAIMS
        if auth and draw(st.integers(0, 3)) == 0
    )
    issuers = tuple(draw(st.lists(st.sampled_from(ISSUER_NAMES), min_size=1, max_size=2, unique=True)))
    return Spec(
        segments=tuple(segments),
        methods=frozenset(draw(st.lists(st.sampled_from(METHODS), min_size=1, max_size=3))),
        issuers=issuers if auth else (),
        match=match,
        require=require,
        auth=auth,
    )


def build(routes: list[Spec]) -> Policy:
    """The specs as a Policy (built directly: unreachable routes are allowed here, first match must win)."""
    built = []
    for index, spec in enumerate(routes, start=1):
        text = "".join("/" + (s[1] if s[0] == "lit" else "{" + s[1] + (":" + s[2] if s[2] else "") + "}")
                       for s in spec.segments) or "/"  # fmt: skip
        built.append(
            Route(
                index=index,
                template=parse_template(text),
                methods=spec.methods,
                upstream=UPSTREAM,
                issuers=spec.issuers,
                match=tuple(MatchRule(p, ClaimRef.parse(c)) for p, c in spec.match),
                require=tuple(RequireRule(ClaimRef.parse(c), v) for c, v in spec.require),
                auth_required=spec.auth,
            )
        )
    issuers = tuple(Issuer(name, jwks_url=f"http://127.0.0.1/{name}") for name in ISSUER_NAMES)
    return Policy(routes=tuple(built), upstreams=(UPSTREAM,), issuers=issuers)


# ---- the model -------------------------------------------------------------------------------------------

ALNUM = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def model_accepts(kind: str, text: str) -> bool:
    if kind == "":
        return 1 <= len(text) <= 128 and all(ch in ALNUM or ch in "_-" for ch in text)
    if kind == "int":
        return text.isascii() and text.isdigit() and text[0] != "0" and len(text) <= 18
    parts = text.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
        return False
    hexes = "".join(parts)
    return all(ch in "0123456789abcdef" for ch in hexes) or all(ch in "0123456789ABCDEF" for ch in hexes)


def model_target_ok(segments: list[str]) -> bool:
    """The strict checks, for the segment texts this test generates: no empty or dot segment, no escape,
    no ';', nothing outside ASCII letters, digits and `-._~`."""
    return all(s not in ("", ".", "..") and all(ch in ALNUM or ch in "-._~" for ch in s) for s in segments)


def model_claim_texts(claims: dict[str, Any], ref: str) -> list[str]:
    value: Any = claims
    for step in ref.split("."):
        value = value.get(step) if isinstance(value, dict) else None
    items = value if isinstance(value, list) else [value]
    texts = []
    for item in items:
        if type(item) is str:
            texts.append(item)
        elif type(item) is int:
            texts.append(str(item))
        elif type(item) is float:
            if item == int(item):
                texts.append(str(int(item)))
        else:
            return []
    return texts


def model(routes: list[Spec], method: str, target: str, issuer: str, claims: dict[str, Any]) -> Any:
    """(status, route index, params) per docs/policy.md; status None means forwarded."""
    path = target.partition("?")[0]
    if path != "/" and path.endswith("/"):
        path = path[:-1]  # one trailing slash names the route without it
    segments = [] if path == "/" else path[1:].split("/")
    if not model_target_ok(segments):
        return (400, None, None)
    for index, spec in enumerate(routes, start=1):
        if len(spec.segments) != len(segments):
            continue
        params: dict[str, str] = {}
        for written, text in zip(spec.segments, segments, strict=True):
            if written[0] == "lit" and written[1] != text:
                break
            if written[0] == "param":
                if not model_accepts(written[2], text):
                    break
                params[written[1]] = text
        else:
            if method not in spec.methods:
                return (405, index, params)
            if not spec.auth:
                return (None, index, params)
            if issuer not in spec.issuers:
                return (401, index, params)
            if any(params[p] not in model_claim_texts(claims, c) for p, c in spec.match):
                return (403, index, params)
            if any(not values & set(model_claim_texts(claims, c)) for c, values in spec.require):
                return (403, index, params)
            return (None, index, params)
    return (404, None, None)


def system(router: Router, method: str, target: str, issuer: str, claims: dict[str, Any]) -> Any:
    try:
        located = router.locate(target)
    except BadTarget:
        return (400, None, None)
    except NotRouted:
        return (404, None, None)
    route, params = located.route, dict(located.params)
    try:
        check_method(route, method)
        if route.auth_required:
            authorise(route, located.params, issuer, claims)
    except MethodNotAllowed:
        return (405, route.index, params)
    except IssuerNotAccepted:
        return (401, route.index, params)
    except Forbidden:
        return (403, route.index, params)
    return (None, route.index, params)


claim_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(["a", "b", "7", "x", *SEGMENTS[:8]]),
        st.sampled_from([7, 0, 7.0, 7.5]),
    ),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=5,
)
claim_sets = st.fixed_dictionaries(
    {},
    optional={
        "c1": claim_values,
        "c2": claim_values,
        "n": st.one_of(claim_values, st.fixed_dictionaries({}, optional={"c3": claim_values})),
    },
)


def draw_target(data: st.DataObject, routes: list[Spec]) -> str:
    """A path for these routes: half are built from a route's own shape, so matches are common, not lucky."""
    shape = data.draw(st.sampled_from(routes)).segments
    length = data.draw(st.sampled_from([len(shape), len(shape), 0, 1, 2, 3]))
    segments = [data.draw(st.sampled_from(SEGMENTS)) for _ in range(length)]
    if length == len(shape):
        for position, written in enumerate(shape):
            if written[0] == "lit" and data.draw(st.booleans()):
                segments[position] = written[1]
            elif written[0] == "param" and data.draw(st.booleans()):
                segments[position] = data.draw(st.sampled_from(VALID[written[2]]))
    return "/" + "/".join(segments)


# A policy and one request against it (target, method, issuer, claims): drawn the same for the model check here
# and for the live gateway in tests/security/test_policy_fuzz.py.
given_a_policy_and_a_request = given(
    routes=st.lists(specs(), min_size=1, max_size=6),
    data=st.data(),
    method=st.sampled_from(METHODS),
    issuer=st.sampled_from([*ISSUER_NAMES, "i3"]),
    claims=claim_sets,
    query=st.sampled_from(["", "?q=1", "?a=b&c=d"]),
)


@BOUNDED
@given_a_policy_and_a_request
def test_a_request_is_allowed_only_when_the_model_allows_it(
    routes: list[Spec], data: st.DataObject, method: str, issuer: str, claims: dict[str, Any], query: str
) -> None:
    target = draw_target(data, routes) + query
    expected = model(routes, method, target, issuer, claims)
    event(f"status {expected[0]}")
    assert system(Router(build(routes)), method, target, issuer, claims) == expected
