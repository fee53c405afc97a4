"""Request smuggling: the upstream sees exactly the requests the gateway authorised, framed by the gateway.

Every case runs against `WireUpstream`, which records the raw bytes the gateway sent, so "framed by the
gateway" means: one request per authorised request, a Content-Length equal to the body, no Transfer-Encoding,
and no byte of a smuggled request anywhere but inside a body the gateway itself framed.
"""

from __future__ import annotations

import pytest

from tests.gateway_fixtures import make_token
from tests.security.conftest import EdgeFactory
from tests.security.wire import Exchange, WireUpstream, exchange, request

TOKEN = make_token("alice")
AUTH = f"Authorization: Bearer {TOKEN}"
POST_HEAD = f"POST /api/alice/tasks HTTP/1.1\r\nHost: gateway.test\r\n{AUTH}\r\n"
SMUGGLED = "GET /api/bob/tasks HTTP/1.1\r\nHost: gateway.test\r\n\r\n"
ABC = "3\r\nabc\r\n0\r\n\r\n"


def assert_framed_by_gateway(ex: Exchange, wire: WireUpstream) -> None:
    """Each upstream request was authorised (one 2xx each), is alice's, and is Content-Length framed."""
    assert wire.stray == []
    assert len(wire.seen) == sum(1 for r in ex.responses if r.status == 200)
    for seen in wire.seen:
        assert seen.request_line.split(" ")[1].startswith("/api/alice/")
        assert seen.header("Transfer-Encoding") == []
        if seen.body:
            assert seen.header("Content-Length") == [str(len(seen.body))]
        else:
            assert seen.header("Content-Length") in ([], ["0"])


REFUSED = {
    "CL.TE": "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE.CL": "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
    "duplicate Content-Length, same value": "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "duplicate Content-Length, different values": "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "Content-Length list": "Content-Length: 3, 3\r\n\r\nabc",
    "Content-Length with sign": "Content-Length: +3\r\n\r\nabc",
    "negative Content-Length": "Content-Length: -1\r\n\r\n",
    "hex Content-Length": "Content-Length: 0x3\r\n\r\nabc",
    "empty Content-Length": "Content-Length:\r\n\r\nabc",
    "Content-Length overflow": "Content-Length: 99999999999999999999999\r\n\r\nabc",
    "Transfer-Encoding not chunked": "Transfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "chunked not last": "Transfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "two Transfer-Encoding headers": "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + ABC,
    "Transfer-Encoding then garbage": "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "space before colon": "Transfer-Encoding : chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "vertical tab as whitespace": "Transfer-Encoding:\x0bchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "underscore spelling": "Transfer_Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "obs-fold continuation": "X-Note: a\r\n Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "chunk size not hex": "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk size overflow": "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nabc\r\n0\r\n\r\n",
    "chunk shorter than declared": "Transfer-Encoding: chunked\r\n\r\n5\r\nabc\r\n0\r\n\r\n",
    "bare LF after chunk size": "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
    "bare LF after chunk data": "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
    "space after chunk size": "Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
    "bare LF inside chunk extension": "Transfer-Encoding: chunked\r\n\r\n3;foo\nbar\r\nabc\r\n0\r\n\r\n",
    "CRLF inside quoted chunk extension": 'Transfer-Encoding: chunked\r\n\r\n3;a="b\r\nc"\r\nabc\r\n0\r\n\r\n',
    "framing header in trailer": "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 50\r\n\r\n"
    + SMUGGLED,
}


@pytest.mark.parametrize("name", list(REFUSED))
async def test_ambiguous_framing_is_400_and_nothing_reaches_upstream(
    edge: EdgeFactory, wire: WireUpstream, name: str
) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, (POST_HEAD + REFUSED[name]).encode("latin-1"))
    assert [r.status for r in ex.responses] == [400], ex.data[:300]
    assert ex.responses[0].header("Content-Type") == ["application/json"]
    assert ex.closed
    assert wire.seen == [] and wire.stray == []


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: 3\r\n\r\nabc",
        "Content-Length:   3   \r\n\r\nabc",
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "Transfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "Transfer-Encoding:\tchunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n",
        'Transfer-Encoding: chunked\r\n\r\n3;ext=1;q="x"\r\nabc\r\n0\r\n\r\n',
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-User-Id: bob\r\nAuthorization: x\r\n\r\n",
    ],
    ids=["content-length", "padded", "chunked", "upper-case chunked", "tab, two chunks", "extensions", "trailers"],
)
async def test_legitimate_framings_are_reframed_with_content_length(
    edge: EdgeFactory, wire: WireUpstream, framing: str
) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, (POST_HEAD + "Connection: close\r\n" + framing).encode())
    assert [r.status for r in ex.responses] == [200]
    assert len(wire.seen) == 1
    seen = wire.seen[0]
    assert seen.request_line == "POST /api/alice/tasks HTTP/1.1"
    assert (seen.body, seen.header("Content-Length"), seen.header("Transfer-Encoding")) == (b"abc", ["3"], [])
    # a trailer never becomes a header: the identity the upstream sees is the gateway's
    assert seen.header("X-User-Id") == ["alice"] and seen.header("Authorization") == []
    assert_framed_by_gateway(ex, wire)


async def test_http10_with_chunked_is_reframed(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    head = POST_HEAD.replace("HTTP/1.1", "HTTP/1.0")
    ex = await exchange(gw.port, (head + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").encode())
    assert [r.status for r in ex.responses] == [200] and ex.closed
    assert [(s.request_line, s.body) for s in wire.seen] == [("POST /api/alice/tasks HTTP/1.1", b"abc")]
    assert_framed_by_gateway(ex, wire)


async def test_bytes_after_an_http10_request_are_refused_not_parsed(edge: EdgeFactory, wire: WireUpstream) -> None:
    """HTTP/1.0 without keep-alive ends the connection with the message: anything after it is an error."""
    gw = await edge(upstream_url=wire.url)
    head = POST_HEAD.replace("HTTP/1.1", "HTTP/1.0")
    ex = await exchange(gw.port, (head + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + SMUGGLED).encode())
    assert [r.status for r in ex.responses] == [400] and ex.closed
    assert wire.seen == [] and wire.stray == []


async def test_request_hidden_in_a_body_stays_in_the_body(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    head = request("GET", "/api/alice/tasks", f"Content-Length: {len(SMUGGLED)}", token=TOKEN)
    ex = await exchange(gw.port, head + SMUGGLED.encode())
    assert [r.status for r in ex.responses] == [200]
    assert len(wire.seen) == 1
    assert wire.seen[0].body == SMUGGLED.encode()
    assert wire.seen[0].header("Content-Length") == [str(len(SMUGGLED))]
    assert_framed_by_gateway(ex, wire)


async def test_pipelined_requests_are_each_checked(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    pipeline = (
        request("GET", "/api/alice/tasks", token=TOKEN, close=False)
        + request("GET", "/api/bob/tasks", token=TOKEN, close=False)
        + request("POST", "/api/alice/tasks", "Content-Length: 2", token=TOKEN, close=False, body=b"{}")
        + request("GET", "/api/alice/tasks/1", close=False)
        + request("DELETE", "/api/alice/tasks/7", token=TOKEN)
    )
    ex = await exchange(gw.port, pipeline)
    assert [r.status for r in ex.responses] == [200, 403, 200, 401, 200]
    assert [(s.request_line, s.body) for s in wire.seen] == [
        ("GET /api/alice/tasks HTTP/1.1", b""),
        ("POST /api/alice/tasks HTTP/1.1", b"{}"),
        ("DELETE /api/alice/tasks/7 HTTP/1.1", b""),
    ]
    assert_framed_by_gateway(ex, wire)


async def test_pipelined_request_after_a_refused_one_is_never_read(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    bad = POST_HEAD + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    ex = await exchange(gw.port, bad.encode() + request("GET", "/api/alice/tasks", token=TOKEN))
    assert [r.status for r in ex.responses] == [400] and ex.closed
    assert wire.seen == []


async def test_oversize_body_closes_the_connection_before_the_next_request(
    edge: EdgeFactory, wire: WireUpstream
) -> None:
    gw = await edge(upstream_url=wire.url, max_body_bytes=16)
    body = b"x" * 17
    ex = await exchange(
        gw.port,
        request("POST", "/api/alice/tasks", "Content-Length: 17", token=TOKEN, close=False, body=body)
        + request("GET", "/api/alice/tasks", token=TOKEN),
    )
    assert [r.status for r in ex.responses] == [413] and ex.closed
    assert wire.seen == []
