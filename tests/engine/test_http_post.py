"""The engine's own ``http.post`` over its small HTTP/1.1 client, against a socket server whose every
answer byte the test chooses: framing (length, chunked, to the end of the connection), keep-alive
reuse, a server that drops an idle connection, refused headers, timeouts and the status mapping."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from andon.platform.engine.capabilities import (
    FAILED,
    INVALID,
    NOT_FOUND,
    UNAVAILABLE,
    Call,
    Capabilities,
    CapabilityError,
)

pytestmark = pytest.mark.anyio

# Given the request's head and body, the raw answer and whether to close the connection after it.
Script = Callable[[bytes, bytes], tuple[bytes, bool]]


@dataclass
class Server:
    url: str
    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    script: Script = lambda head, body: (b"HTTP/1.1 204 No Content\r\n\r\n", False)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    box = Server(url="")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        box.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                box.requests.append((head, body))
                answer, close = box.script(head, body)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0)
    box.url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/hook?x=1"
    try:
        yield box
    finally:
        listening.close()


def _call(url: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0) -> Call:
    inputs = {"url": url, "json": {"n": 1, "text": "é"}, "headers": headers or {}}
    return Call("http.post", inputs, "andon:run:step", timeout, uuid.uuid4(), uuid.uuid4())


def _json_answer(status: int, payload: object) -> bytes:
    data = json.dumps(payload).encode()
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
    )


async def test_a_post_sends_the_json_and_key_and_reuses_its_connection(server: Server) -> None:
    server.script = lambda head, body: (_json_answer(200, {"ok": True}), False)
    capabilities = Capabilities()
    try:
        first = await capabilities.call(_call(server.url, headers={"Content-Type": "application/vnd+json"}))
        second = await capabilities.call(_call(server.url))
    finally:
        await capabilities.close()
    assert first == {"status": 200, "body": {"ok": True}}
    assert second == first
    assert server.connections == 1
    head, body = server.requests[0]
    assert head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert b"\r\nIdempotency-Key: andon:run:step\r\n" in head
    assert head.lower().count(b"content-type:") == 1 and b"Content-Type: application/vnd+json" in head
    assert json.loads(body) == {"n": 1, "text": "é"}


async def test_chunked_and_connection_delimited_answers_are_read_whole(server: Server) -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n5\r\n: [1]\r\n1\r\n}\r\n0\r\nX-Trailer: y\r\n\r\n'
    )
    answers = iter([(chunked, False), (b"HTTP/1.0 200 OK\r\n\r\nnot json", True)])
    server.script = lambda head, body: next(answers)
    capabilities = Capabilities()
    try:
        assert await capabilities.call(_call(server.url)) == {"status": 201, "body": {"a": [1]}}
        assert await capabilities.call(_call(server.url)) == {"status": 200, "body": "not json"}
    finally:
        await capabilities.close()
    assert server.connections == 1


async def test_an_idle_connection_the_server_dropped_is_replaced_once(server: Server) -> None:
    # Keep-alive by its headers, but the server closes after each answer (an idle timeout).
    server.script = lambda head, body: (_json_answer(200, {"n": len(server.requests)}), True)
    capabilities = Capabilities()
    try:
        assert (await capabilities.call(_call(server.url)))["body"] == {"n": 1}
        await asyncio.sleep(0.05)
        assert (await capabilities.call(_call(server.url)))["body"] == {"n": 2}
    finally:
        await capabilities.close()
    assert server.connections == 2
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("status", "kind"), [(503, UNAVAILABLE), (500, FAILED), (429, FAILED), (404, NOT_FOUND), (422, INVALID)]
)
async def test_answers_map_to_error_kinds(server: Server, status: int, kind: str) -> None:
    server.script = lambda head, body: (_json_answer(status, {"why": "because"}), False)
    capabilities = Capabilities()
    try:
        with pytest.raises(CapabilityError) as raised:
            await capabilities.call(_call(server.url))
    finally:
        await capabilities.close()
    assert raised.value.kind == kind
    if kind == INVALID:
        assert "because" in str(raised.value)


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(server: Server) -> None:
    capabilities = Capabilities()
    try:
        with pytest.raises(CapabilityError) as raised:
            await capabilities.call(_call(server.url, headers={"X-Evil": "a\r\nX-Injected: 1"}))
    finally:
        await capabilities.close()
    assert raised.value.kind == INVALID
    assert server.requests == [] and server.connections == 0


async def test_no_answer_in_time_and_no_listener_are_unavailable(server: Server) -> None:
    stalled = asyncio.Event()

    def never(head: bytes, body: bytes) -> tuple[bytes, bool]:
        stalled.set()
        return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", False

    server.script = never
    capabilities = Capabilities()
    try:
        with pytest.raises(CapabilityError) as late:
            await capabilities.call(_call(server.url, timeout=0.3))
        with pytest.raises(CapabilityError) as refused:
            await capabilities.call(_call("http://127.0.0.1:9/nothing", timeout=2))
    finally:
        await capabilities.close()
    assert stalled.is_set()
    assert late.value.kind == UNAVAILABLE and "0.3 s" in str(late.value)
    assert refused.value.kind == UNAVAILABLE
