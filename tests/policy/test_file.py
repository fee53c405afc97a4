"""Validation at start: every mistake names the file, the line, the place (route index and path) and the
problem, in one line; a valid file becomes exactly the Policy it describes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.policy.claims import ClaimRef, HeaderRule, MatchRule, RequireRule
from gateway.policy.errors import PolicyError
from gateway.policy.file import MAX_POLICY_BYTES, load_policy
from gateway.policy.model import Issuer, Policy

SECRET = "jobs-secret-" + "j" * 30
OTHER_SECRET = "other-secret-" + "o" * 30
INTERNAL = "internal-secret-" + "i" * 30
FALLBACK = Issuer(name="default", secret_env="GATEWAY_JWT_SECRET", secrets=(b"f" * 40,))

HEAD = """\
upstreams:
  app: {url: "http://127.0.0.1:9000"}
issuers:
  jobs: {secret_env: JOBS_SECRET}
routes:
"""  # a route written after HEAD starts on line 6


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text))
    environ = {"JOBS_SECRET": SECRET} if env is None else env
    return load_policy(path, environ=environ, fallback_issuer=FALLBACK, reserved_secrets=(INTERNAL.encode(),))


def refusal(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        load(tmp_path, text, env)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "policy.yaml"))
    return caught.value


def route(body: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(body), "  ")


ROUTE_ERRORS = [
    # (route body written at line 6, line of the problem, message tail)
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  math: {x: sub}\n", 9, "route 1 (/a): unknown key 'math'"),
    ("- path: /a\n  methods: [GET]\n", 6, "route 1 (/a): 'upstream' is required"),
    ("- methods: [GET]\n  upstream: app\n", 6, "route 1: 'path' is required"),
    ("- path: /a\n  methods: [GET]\n  upstream: nowhere\n", 8, "route 1 (/a): upstream 'nowhere' is not defined"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  issuers: [ba]\n", 9, "route 1 (/a): issuer 'ba' is not defined"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  issuers: []\n", 9, "issuers must not be an empty list"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  issuers: [jobs, jobs]\n", 9, "'jobs' is listed twice"),
    ("- path: /a/{x\n  methods: [GET]\n  upstream: app\n", 6, "route 1 (/a/{x): path: segment '{x'"),
    ("- path: a\n  methods: [GET]\n  upstream: app\n", 6, "route 1 (a): path: a path template starts with '/'"),
    ("- path: /a/{x}/{x}\n  methods: [GET]\n  upstream: app\n", 6, "path: parameter 'x' appears twice"),
    ("- path: /a/{x:num}\n  methods: [GET]\n  upstream: app\n", 6, "path: parameter 'x': unknown type 'num'"),
    ("- path: /a/../b\n  methods: [GET]\n  upstream: app\n", 6, "path: no request could match it"),
    (
        "- path: /orgs/{org_id}\n  methods: [GET]\n  upstream: app\n  match: {org: org_ids}\n",
        9,
        "route 1 (/orgs/{org_id}): match: the path has no parameter 'org' (it has: org_id)",
    ),
    ("- path: /s\n  methods: [GET]\n  upstream: app\n  match: {x: sub}\n", 9, "no parameter 'x' (it has: none)"),
    ("- path: /a/{x}\n  methods: [GET]\n  upstream: app\n  match: {}\n", 9, "match: expected a mapping"),
    ("- path: /a/{x}\n  methods: [GET]\n  upstream: app\n  match: {x: a..b}\n", 9, "match x: claim 'a..b' is not"),
    ("- path: /a/{x}\n  methods: [GET]\n  upstream: app\n  match: {x: [sub]}\n", 9, "match x must be non-empty text"),
    ("- path: /a\n  methods: [GET, FETCH]\n  upstream: app\n", 7, "method 'FETCH' is not one of GET, POST"),
    ("- path: /a\n  methods: [get]\n  upstream: app\n", 7, "(write it in upper case: GET)"),
    ("- path: /a\n  methods: [OPTIONS]\n  upstream: app\n", 7, "method 'OPTIONS' is not one of"),
    ("- path: /a\n  methods: [HEAD]\n  upstream: app\n", 7, "method 'HEAD' is not one of"),
    ("- path: /a\n  methods: [GET, GET]\n  upstream: app\n", 7, "method GET is listed twice"),
    ("- path: /a\n  methods: []\n  upstream: app\n", 7, "methods must not be an empty list"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  auth: nobody\n", 9, "auth is 'bearer' (the default) or 'none'"),
    *[
        (
            f"- path: /a/{{x}}\n  methods: [GET]\n  upstream: app\n  auth: none\n  {key}: {value}\n",
            10,
            f"route 1 (/a/{{x}}): '{key}' needs a token, and this route has auth: none",
        )
        for key, value in [
            ("issuers", "[jobs]"),
            ("match", "{x: sub}"),
            ("require", "{role: admin}"),
            ("headers", "{X-Role: role}"),
        ]
    ],
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  require: {role: []}\n", 9, "require role: list at least one"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  require: {role: [true]}\n", 9, "values are non-empty text"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  require: {role: [1.5]}\n", 9, "values are non-empty text"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  require: {role: [null]}\n", 9, "values are non-empty text"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  require: {role: ['']}\n", 9, "values are non-empty text"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  require: {a b: [x]}\n", 9, "require: claim 'a b' is not"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  require: [role]\n", 9, "require: expected a mapping"),
    *[
        (f"- path: /a\n  methods: [GET]\n  upstream: app\n  headers: {{{name}: email}}\n", 9, problem)
        for name, problem in [
            ("X-User-Id", "headers: X-User-Id is set or forwarded by the gateway itself"),
            ("x-user-id", "headers: x-user-id is set or forwarded by the gateway itself"),
            ("X-Gateway-Assertion", "is set or forwarded by the gateway itself"),
            ("X-Request-Id", "is set or forwarded by the gateway itself"),
            ("X-Forwarded-For", "is set or forwarded by the gateway itself"),
            ("X-Forwarded-Host", "is set or forwarded by the gateway itself"),
            ("Forwarded", "is set or forwarded by the gateway itself"),
            ("Host", "is set or forwarded by the gateway itself"),
            ("Content-Length", "is set or forwarded by the gateway itself"),
            ("Content-Type", "is set or forwarded by the gateway itself"),
            ("Transfer-Encoding", "is set or forwarded by the gateway itself"),
            ("Authorization", "is set or forwarded by the gateway itself"),
            ("Proxy-Authorization", "is set or forwarded by the gateway itself"),
            ("Connection", "is set or forwarded by the gateway itself"),
            ("Cookie", "is set or forwarded by the gateway itself"),
            ("Accept", "is set or forwarded by the gateway itself"),
            ("Idempotency-Key", "is set or forwarded by the gateway itself"),
            ("'X User'", "headers: 'X User' is not a valid header name"),
            ("'X-Üser'", "is not a valid header name"),
            ("'X:Y'", "is not a valid header name"),
        ]
    ],
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  headers: {X-A: a, x-a: b}\n", 9, "headers: x-a is listed twice"),
    ("- path: /a\n  methods: [GET]\n  upstream: app\n  headers: {X-A: [a]}\n", 9, "headers X-A must be non-empty text"),
    ("- /a\n", 6, "route 1: expected a mapping"),
    (
        "- path: /a/{x}\n  methods: [GET]\n  upstream: app\n- path: /a/b\n  methods: [POST]\n  upstream: app\n",
        9,
        "route 2 (/a/b): can never match: route 1 (/a/{x}) comes first and matches every path it does",
    ),
    (
        "- path: /a\n  methods: [GET]\n  upstream: app\n- path: /a\n  methods: [POST]\n  upstream: app\n",
        9,
        "route 2 (/a): can never match: route 1 (/a) comes first",
    ),
]


@pytest.mark.parametrize(("body", "line", "tail"), ROUTE_ERRORS)
def test_route_errors_name_file_line_route_and_problem(tmp_path: Path, body: str, line: int, tail: str) -> None:
    error = refusal(tmp_path, route(body))
    assert str(error).startswith(f"{tmp_path / 'policy.yaml'}:{line}: route ")
    assert tail in str(error)
    assert error.line == line


DOCUMENT_ERRORS = [
    # (whole file, line, message tail)
    ("", None, "the policy file is empty"),
    ("# only a comment\n", None, "the policy file is empty"),
    ("upstreams: {a: {url: 'http://x'}}\nroutes: [\n", 3, "not valid YAML"),
    ("a: 1\n---\nb: 2\n", 2, "not valid YAML: expected a single document"),
    ("- 1\n", 1, "expected a mapping of keys to values"),
    ("routes: " + "[" * 100_000 + "]" * 100_000 + "\n", None, "nested too deeply"),
    ("upstreams: {a: {url: 'http://x'}}\n", 1, "'routes' is required"),
    ("upstreams: {a: {url: 'http://x'}}\nroutes: []\nextra: 1\n", 3, "unknown key 'extra'"),
    ("upstreams: {a: {url: 'http://x'}}\nroutes: []\n", 2, "routes: expected a non-empty list of routes"),
    ("upstreams: {a: {url: 'http://x'}}\nroutes: {}\n", 2, "routes: expected a non-empty list of routes"),
    ("upstreams: {}\nroutes: [1]\n", 1, "upstreams: expected a mapping of names to definitions"),
    ("upstreams: {'a b': {url: 'http://x'}}\nroutes: [1]\n", 1, "upstreams: 'a b' is not a valid name"),
    ("upstreams:\n  a: {url: 'http://x', pool: 3}\nroutes: [1]\n", 2, "upstream 'a': unknown key 'pool'"),
    ("upstreams:\n  a: {}\nroutes: [1]\n", 2, "upstream 'a': 'url' is required"),
    ("upstreams:\n  a: {url: 'ftp://x'}\nroutes: [1]\n", 2, "url must be an http:// or https:// URL with a host"),
    ("upstreams:\n  a: {url: 'x.example:80'}\nroutes: [1]\n", 2, "must be an http:// or https:// URL"),
    ("upstreams:\n  a: {url: 'http://'}\nroutes: [1]\n", 2, "must be an http:// or https:// URL with a host"),
    ("upstreams:\n  a: {url: 'http://x:99999'}\nroutes: [1]\n", 2, "url is not a valid URL"),
    ("upstreams:\n  a: {url: 'http://x y'}\nroutes: [1]\n", 2, "url is not a valid URL"),
    ("upstreams:\n  a: {url: 'http://u:p@x'}\nroutes: [1]\n", 2, "must not carry credentials"),
    ("upstreams:\n  a: {url: 'http://x/base'}\nroutes: [1]\n", 2, "scheme://host[:port] only (no path or query)"),
    ("upstreams:\n  a: {url: 'http://x?q=1'}\nroutes: [1]\n", 2, "scheme://host[:port] only"),
    ("upstreams:\n  a: {url: 8000}\nroutes: [1]\n", 2, "url must be non-empty text"),
    ("upstreams:\n  a: {url: 'http://x'}\n  a: {url: 'http://y'}\nroutes: [1]\n", 3, "key 'a' appears twice"),
    ("upstreams:\n  a: &u {url: 'http://x'}\n  b: *u\nroutes: [1]\n", 2, "anchors and aliases"),
    ("upstreams:\n  a: {url: 'http://x'}\n  b: *u\nroutes: [1]\n", 3, "anchors and aliases"),
    ("upstreams:\n  a: {url: !!binary aGk=}\nroutes: [1]\n", 2, "unsupported YAML value"),
    ("upstreams:\n  a: {url: 'http://x'}\n  <<: {b: 1}\nroutes: [1]\n", 3, "every key is a plain name"),
    ("upstreams:\n  a: {url: 'http://x'}\n  1: {url: 'http://x'}\nroutes: [1]\n", 3, "every key is a plain name"),
    ("upstreams:\n  a: {url: 'http://x'}\nissuers: {}\nroutes: [1]\n", 3, "issuers: expected a mapping of names"),
    ("upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {}\nroutes: [1]\n", 4, "set 'jwks_url', 'secret_env' or both"),
    ("upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {secret: x}\nroutes: [1]\n", 4, "issuer 'i': unknown key"),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {jwks_url: 'file:///k'}\nroutes: [1]\n",
        4,
        "issuer 'i': jwks_url must be an http:// or https:// URL",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {secret_env: NOT_SET}\nroutes: [1]\n",
        4,
        "issuer 'i': secret_env: neither NOT_SET nor NOT_SET_FILE is set",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {secret_env: 'A-B'}\nroutes: [1]\n",
        4,
        "secret_env 'A-B' is not an environment variable name",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {secret_env: WEAK}\nroutes: [1]\n",
        4,
        "issuer 'i': secret_env: WEAK is too weak",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {secret_env: BOTH}\nroutes: [1]\n",
        4,
        "secret_env: set only one of BOTH and BOTH_FILE",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {secret_env: MISSING_FILE}\nroutes: [1]\n",
        4,
        "secret_env: MISSING_FILE_FILE: cannot read",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {secret_env: INTERNAL}\nroutes: [1]\n",
        4,
        "secret_env: INTERNAL must differ from GATEWAY_INTERNAL_SECRET",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {secret_env: S1}\n  j: {secret_env: S2}\nroutes: [1]\n",
        5,
        "issuer 'j': shares a secret with issuer 'i'",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {jwks_url: 'http://k/jwks'}\n"
        "  j: {jwks_url: 'http://k/jwks'}\nroutes: [1]\n",
        5,
        "issuer 'j': has the same jwks_url as issuer 'i': give each a distinct 'issuer'",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {jwks_url: 'http://k', audience: []}\nroutes: [1]\n",
        4,
        "issuer 'i': audience must not be an empty list",
    ),
    (
        "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {jwks_url: 'http://k', issuer: ''}\nroutes: [1]\n",
        4,
        "issuer 'i': issuer must be non-empty text",
    ),
]


@pytest.mark.parametrize(("text", "line", "tail"), DOCUMENT_ERRORS)
def test_document_errors_name_file_line_and_problem(tmp_path: Path, text: str, line: int | None, tail: str) -> None:
    secrets_file = tmp_path / "absent"
    env = {
        "WEAK": "short",
        "BOTH": SECRET,
        "BOTH_FILE": str(tmp_path / "both"),
        "MISSING_FILE_FILE": str(secrets_file),
        "INTERNAL": f"{SECRET},{INTERNAL}",
        "S1": SECRET,
        "S2": f"{OTHER_SECRET},{SECRET}",
    }
    error = refusal(tmp_path, text, env)
    prefix = f"{tmp_path / 'policy.yaml'}:{line}: " if line is not None else f"{tmp_path / 'policy.yaml'}: "
    assert str(error).startswith(prefix), str(error)
    assert tail in str(error)


def test_no_secret_value_appears_in_an_error(tmp_path: Path) -> None:
    text = "upstreams:\n  a: {url: 'http://x'}\nissuers:\n  i: {secret_env: S}\nroutes: [1]\n"
    for value in (f"{SECRET},short", f"{SECRET},{INTERNAL}"):
        error = refusal(tmp_path, text, {"S": value})
        assert SECRET not in str(error) and INTERNAL not in str(error) and "short" not in str(error)


def test_an_unreadable_or_oversized_or_binary_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PolicyError, match=rf"^{missing}: cannot read the policy file"):
        load_policy(missing, environ={}, fallback_issuer=FALLBACK, reserved_secrets=())
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_POLICY_BYTES + 1))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(big, environ={}, fallback_issuer=FALLBACK, reserved_secrets=())
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"upstreams: \xff\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(binary, environ={}, fallback_issuer=FALLBACK, reserved_secrets=())


def test_without_issuers_and_without_a_default_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("upstreams:\n  a: {url: 'http://x'}\nroutes:\n  - {path: /a, methods: [GET], upstream: a}\n")
    with pytest.raises(PolicyError, match=r"policy.yaml:1: no 'issuers' in the file and no default issuer"):
        load_policy(path, environ={}, fallback_issuer=None, reserved_secrets=())


def test_a_valid_file_becomes_the_policy_it_describes(tmp_path: Path) -> None:
    secrets_file = tmp_path / "jobs.secret"
    secrets_file.write_text(f"{SECRET},{OTHER_SECRET}\n")
    policy = load(
        tmp_path,
        """\
        upstreams:
          app: {url: "https://app.internal:8443/"}
          notes: {url: "http://127.0.0.1:9000"}
        issuers:
          ba:
            jwks_url: "http://127.0.0.1:3000/api/auth/jwks"
            issuer: "http://127.0.0.1:3000"
            audience: "http://127.0.0.1:3000"
          jobs: {secret_env: JOBS_SECRET}
        routes:
          - path: /orgs/{org_id}/notes
            methods: [GET, POST]
            upstream: notes
            issuers: [ba]
            match: {org_id: org.ids}
            require: {role: [owner, admin], level: 3}
            headers: {X-User-Email: email}
          - path: /status
            methods: [GET]
            upstream: app
            auth: none
          - path: /jobs/{job:uuid}
            methods: GET
            upstream: app
        """,
        env={"JOBS_SECRET_FILE": str(secrets_file)},
    )
    assert [u.url for u in policy.upstreams] == ["https://app.internal:8443", "http://127.0.0.1:9000"]
    ba, jobs = policy.issuers
    assert ba == Issuer(
        "ba", "http://127.0.0.1:3000/api/auth/jwks", "http://127.0.0.1:3000", ("http://127.0.0.1:3000",)
    )
    assert jobs.secrets == (SECRET.encode(), OTHER_SECRET.encode()) and jobs.secret_env == "JOBS_SECRET"
    assert SECRET not in repr(jobs)
    notes, status, job = policy.routes
    assert (notes.index, notes.line, notes.upstream.name, notes.issuers) == (1, 11, "notes", ("ba",))
    assert notes.match == (MatchRule("org_id", ClaimRef.parse("org.ids")),)
    assert notes.require == (
        RequireRule(ClaimRef.parse("role"), frozenset({"owner", "admin"})),
        RequireRule(ClaimRef.parse("level"), frozenset({"3"})),
    )
    assert notes.headers == (HeaderRule("X-User-Email", ClaimRef.parse("email")),)
    assert (status.auth_required, status.issuers, status.line) == (False, (), 18)
    assert job.methods == frozenset({"GET"}) and job.issuers == ("ba", "jobs") and job.auth_required
