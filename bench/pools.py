"""The request pools each case replays: which user, which path, which credential."""

from __future__ import annotations

from bench import tokens
from bench.wrk import Request

POOL_SIZE = 1000
E2E_USERS = 50
CREATE_BODY = '{"title":"bench task","description":"created by make bench"}'


def tasks_path(index: int) -> str:
    return f"/api/{tokens.user_id(index)}/tasks"


def bearer_pool(tokens_by_user: list[str]) -> list[Request]:
    """GET the user's task list with the user's own token, one entry per token."""
    return [
        Request("GET", tasks_path(i), {"Authorization": f"Bearer {token}", "Accept": "application/json"})
        for i, token in enumerate(tokens_by_user)
    ]


def single(pool: list[Request]) -> list[Request]:
    """The same first request over and over: every token check after the first can be a cache hit."""
    return pool[:1]


def bearer_creates(tokens_by_user: list[str]) -> list[Request]:
    return [
        Request(
            "POST",
            tasks_path(i),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            CREATE_BODY,
        )
        for i, token in enumerate(tokens_by_user)
    ]


def unauthenticated(method: str, users: int) -> list[Request]:
    """The service floor's requests: the same paths and bodies, no credential (bench/service_floor.py)."""
    if method == "POST":
        headers = {"Content-Type": "application/json"}
        return [Request(method, tasks_path(i), headers, CREATE_BODY) for i in range(users)]
    return [Request(method, tasks_path(i), {"Accept": "application/json"}) for i in range(users)]


# Assertions are single-use: the direct service case replays a pool with one assertion per request, as large
# as the most requests one wrk run makes (25 s at most at 1,600/s, three times what the service does; about
# 1 s to sign and 25 MB of requests). Should a run ever outrun it, the repeats are 401s, counted as wrk status
# errors in the report, never silent.
ASSERTED_POOL = 40_000


def asserted(internal_secret: str, method: str, users: int, count: int = ASSERTED_POOL) -> list[Request]:
    """What the gateway would send the service: a fresh assertion per request (each is accepted once, and
    for ASSERTION_TTL_S), so build right before each run."""
    requests = []
    body = CREATE_BODY if method == "POST" else None
    for n in range(count):
        i = n % users
        path = tasks_path(i)
        headers = tokens.assertion_headers(internal_secret, tokens.user_id(i), method, path, (body or "").encode())
        if body is not None:
            headers["Content-Type"] = "application/json"
        requests.append(Request(method, path, headers, body))
    return requests


EXPIRED_BY_S = 600  # well past any clock-skew leeway


def rejections(jwt_secret: str) -> list[tuple[str, Request, int]]:
    """Requests each proxy must refuse (name, request, status) before it is timed: the checks it is
    timed with are the checks it enforces."""
    me, other = tokens.user_id(0), tokens.user_id(1)

    def bearer(token: str, index: int = 0) -> Request:
        return Request("GET", tasks_path(index), {"Authorization": f"Bearer {token}"})

    return [
        ("no token", Request("GET", tasks_path(0), {}), 401),
        ("forged signature", bearer(tokens.hs256_token(tokens.new_secret(), me)), 401),
        ("expired", bearer(tokens.hs256_token(jwt_secret, me, ttl_s=-EXPIRED_BY_S)), 401),
        ("alg none", bearer(tokens.unsigned_token(me)), 401),
        ("another user's path", bearer(tokens.hs256_token(jwt_secret, other)), 403),
        ("outside the routes", Request("GET", "/admin", {"Authorization": "Bearer x"}), 404),
    ]
