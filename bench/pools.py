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


def asserted(internal_secret: str, method: str, users: int) -> list[Request]:
    """What the gateway would send the service: fresh assertions, so build right before each run."""
    requests = []
    for i in range(users):
        path = tasks_path(i)
        headers = tokens.assertion_headers(internal_secret, tokens.user_id(i), method, path)
        if method == "POST":
            headers["Content-Type"] = "application/json"
        requests.append(Request(method, path, headers, CREATE_BODY if method == "POST" else None))
    return requests
