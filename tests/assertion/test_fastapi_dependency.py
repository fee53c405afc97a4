"""The one-line dependency on an app of its own (not the task service, not the notes example): what a route
gets, that it can still read the body the dependency hashed, and that every refusal is a 401 that reads nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from taskgate_assertion.fastapi import Caller, TrustGateway
from taskgate_assertion.format import TYPE
from tests.support.assertions import gateway_assertion

SECRET = b"k" * 40
REFUSED = {"detail": "missing or invalid gateway assertion"}


class Item(BaseModel):
    name: str


# At module level: with postponed annotations FastAPI resolves `Depends(gateway.user)` in the module's globals.
gateway = TrustGateway([SECRET.decode()], "shop", claim_headers=["X-Plan"])


async def add(item: Item, request: Request, caller: Annotated[Caller, Depends(gateway.user)]) -> dict[str, object]:
    return {"name": item.name, "raw": (await request.body()).decode(), "user": caller.user, "claims": caller.claims}


async def ping(caller: Annotated[Caller, Depends(gateway.request)]) -> dict[str, object]:
    return {"user": caller.user, "rid": caller.request_id}


async def item_after_gateway(request: Request, _caller: Annotated[Caller, Depends(gateway.user)]) -> Item:
    """The body read through a dependency on the gateway's, so it is decoded only for a verified request."""
    return Item.model_validate_json(await request.body())


async def add_checked(item: Annotated[Item, Depends(item_after_gateway)]) -> dict[str, str]:
    return {"name": item.name}


def make_app() -> FastAPI:
    """A fresh app per test; the module's dependency (and its replay cache) is shared, ids never repeat."""
    app = FastAPI()
    app.post("/items")(add)
    app.get("/ping")(ping)
    app.post("/checked")(add_checked)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://shop") as c:
        yield c


def signed(
    method: str,
    target: str,
    body: bytes,
    user: str | None = "alice",
    audience: str = "shop",
    claim_headers: Mapping[str, str | None] | None = None,
) -> str:
    return gateway_assertion(
        SECRET, audience, method, target, body, user=user, claim_headers=claim_headers, request_id="rid-1"
    )


async def test_the_route_gets_the_user_the_claims_and_the_body_again(client: httpx.AsyncClient) -> None:
    body = b'{"name":"lamp"}'
    assertion = signed("POST", "/items", body, claim_headers={"x-plan": "pro"})
    headers = {"X-Gateway-Assertion": assertion, "X-Plan": "pro", "X-Other": "ignored"}
    response = await client.post("/items", content=body, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"name": "lamp", "raw": body.decode(), "user": "alice", "claims": {"X-Plan": "pro"}}


async def test_an_auth_none_assertion_passes_request_but_not_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/ping", headers={"X-Gateway-Assertion": signed("GET", "/ping", b"", user=None)})
    assert response.json() == {"user": None, "rid": "rid-1"}
    body = b'{"name":"lamp"}'
    no_user = {"X-Gateway-Assertion": signed("POST", "/items", body, user=None), "Content-Type": "application/json"}
    response = await client.post("/items", content=body, headers=no_user)
    assert (response.status_code, response.json()) == (401, REFUSED)


async def test_refusals_are_401_and_a_refused_attempt_does_not_use_up_the_id(client: httpx.AsyncClient) -> None:
    body = b'{"name":"lamp"}'
    json_type = {"Content-Type": "application/json"}
    good = signed("POST", "/items", body)
    with_plan = signed("POST", "/items", body, claim_headers={"x-plan": "pro"})
    attempts: list[tuple[list[tuple[str, str]], bytes]] = [
        ([], body),  # no assertion
        ([("X-Gateway-Assertion", signed("POST", "/items", body, audience="task-service"))], body),  # another aud
        ([("X-Gateway-Assertion", good)], b'{"name":"bomb"}'),  # another body
        ([("X-Gateway-Assertion", with_plan), ("X-Plan", "pro"), ("X-Plan", "free")], body),  # a claim header twice
        ([("X-Gateway-Assertion", good), ("X-User-Id", "bob")], body),  # X-User-Id is not sub
    ]
    for headers, content in attempts:
        response = await client.post("/items", content=content, headers=[*headers, *json_type.items()])
        assert (response.status_code, response.json()) == (401, REFUSED), headers
    accepted = await client.post("/items", content=body, headers={"X-Gateway-Assertion": good, **json_type})
    assert accepted.status_code == 200
    replayed = await client.post("/items", content=body, headers={"X-Gateway-Assertion": good, **json_type})
    assert (replayed.status_code, replayed.json()) == (401, REFUSED)


async def test_claim_headers_are_the_gateways_or_refused(client: httpx.AsyncClient) -> None:
    """The headers a route's policy copies from the token are bound into the assertion (`hdr`): changed, removed,
    or added where the gateway sent none, the request is refused; a header no assertion vouches for is not a
    claim, whatever the request carries."""
    body = b'{"name":"lamp"}'
    json_type = {"Content-Type": "application/json"}

    async def post(assertion: str, plan: str | None) -> httpx.Response:
        plan_header = {} if plan is None else {"X-Plan": plan}
        return await client.post(
            "/items", content=body, headers={"X-Gateway-Assertion": assertion, **plan_header, **json_type}
        )

    pro, no_plan = {"x-plan": "pro"}, {"x-plan": None}
    for bound, sent in ((pro, "free"), (pro, None), (no_plan, "pro")):
        response = await post(signed("POST", "/items", body, claim_headers=bound), sent)
        assert (response.status_code, response.json()) == (401, REFUSED), (bound, sent)
    assert (await post(signed("POST", "/items", body, claim_headers=no_plan), None)).json()["claims"] == {}
    assert (await post(signed("POST", "/items", body, claim_headers=pro), "pro")).json()["claims"] == {"X-Plan": "pro"}
    unbound = await post(signed("POST", "/items", body), "enterprise")  # a route without headers: nothing vouched
    assert (unbound.status_code, unbound.json()["claims"]) == (200, {})


@pytest.mark.parametrize(
    "hdr",
    [
        ["x-plan", "pro"],
        "x-plan=pro",
        {"x-plan": 1},
        {"x-plan": ["pro"]},
        {"X-Plan": "pro"},  # the gateway writes names in lower case
        {"x-plan\u2603": None},  # not Latin-1: Starlette could not even look it up
        {"": None},
    ],
)
async def test_a_malformed_hdr_claim_is_refused(client: httpx.AsyncClient, hdr: object) -> None:
    """Signed with the right secret but not what the gateway writes: refused, never read as claims."""
    body = b'{"name":"lamp"}'
    claims = jwt.decode(signed("POST", "/items", body), SECRET, algorithms=["HS256"], audience="shop")
    forged = jwt.encode({**claims, "hdr": hdr}, SECRET, algorithm="HS256", headers={"typ": TYPE})
    headers = {"X-Gateway-Assertion": forged, "X-Plan": "pro", "Content-Type": "application/json"}
    response = await client.post("/items", content=body, headers=headers)
    assert (response.status_code, response.json()) == (401, REFUSED)


async def test_a_malformed_body_without_an_assertion_is_401_not_422(client: httpx.AsyncClient) -> None:
    """FastAPI parses a declared body before dependencies run; a body parameter therefore answers 422 to a
    caller with no assertion. Routes that must say nothing before the assertion take their body through a
    dependency that depends on the gateway's (as the task service's json_body does); shown here, documented."""
    json_type = {"Content-Type": "application/json"}
    assert (await client.post("/items", content=b"{not json", headers=json_type)).status_code == 422
    response = await client.post("/checked", content=b"{not json", headers=json_type)
    assert (response.status_code, response.json()) == (401, REFUSED)
    body = b'{"name":"lamp"}'
    headers = {"X-Gateway-Assertion": signed("POST", "/checked", body), "Content-Type": "application/json"}
    assert (await client.post("/checked", content=body, headers=headers)).json() == {"name": "lamp"}
