"""The bench's sender connection against a small HTTP/1.1 server on a local socket: one
connection reused, reopened when the server closes it, failures as OSError."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from chat4all.bench import http
from chat4all.bench.http import Poster
from tests.conftest import wait_until


class Server:
    """Answers each request with 202 and its own body; closes after ``close_after`` answers."""

    def __init__(self, close_after: int | None = None, garbage: bool = False) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.close_after, self.garbage = close_after, garbage

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answered += 1
                last = self.close_after is not None and answered >= self.close_after
                if self.garbage:
                    writer.write(b"NOT HTTP\r\n\r\n")
                else:
                    extra = b"Connection: close\r\n" if last else b""
                    writer.write(b"HTTP/1.1 202 Accepted\r\n%bContent-Length: %d\r\n\r\n%b" % (extra, len(body), body))
                await writer.drain()
                if last:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


Start = Callable[[Server], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def start(server: Server) -> str:
        s = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(s)
        return f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/base/"

    yield start
    for s in servers:
        s.close()


async def test_requests_share_one_connection_and_carry_path_headers_and_body(serve: Start) -> None:
    server = Server()
    poster = Poster(await serve(server), "/v1/messages", {"Authorization": "Bearer t"})
    assert await poster.post(b'{"a":1}') == (202, b'{"a":1}')
    assert await poster.post(b'{"b":22}') == (202, b'{"b":22}')
    poster.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /base/v1/messages HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nAuthorization: Bearer t\r\nContent-Length: 7\r\n\r\n" in first


async def test_connect_opens_the_connection_before_the_first_request_which_then_reuses_it(serve: Start) -> None:
    server = Server()
    poster = Poster(await serve(server), "/x", {})
    await poster.connect()

    async def accepted() -> bool:
        return server.connections == 1

    await wait_until(accepted, what="the server to accept the connection")
    assert server.requests == []
    await poster.connect()  # already open: nothing new
    assert await poster.post(b"1") == (202, b"1")
    poster.close()
    assert server.connections == 1


async def test_a_connection_the_server_closed_is_reopened(serve: Start) -> None:
    server = Server(close_after=1)
    poster = Poster(await serve(server), "/x", {})
    for k in range(3):
        assert await poster.post(b"%d" % k) == (202, b"%d" % k)
    poster.close()
    assert server.connections == 3


async def test_an_idle_connection_is_reopened_before_the_server_would_drop_it(
    serve: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "IDLE_S", 0.0)
    server = Server()
    poster = Poster(await serve(server), "/x", {})
    await poster.post(b"1")
    await poster.post(b"2")
    poster.close()
    assert server.connections == 2


async def test_an_answer_that_is_not_http_and_a_refused_connection_are_oserrors(serve: Start) -> None:
    poster = Poster(await serve(Server(garbage=True)), "/x", {})
    with pytest.raises(OSError, match="bad HTTP answer"):
        await poster.post(b"1")
    poster.close()
    gone = Poster("http://127.0.0.1:9/", "/x", {})  # discard port: nothing listens
    with pytest.raises(OSError):
        await gone.post(b"1")


def test_only_http_urls_are_taken() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Poster("ws://127.0.0.1:1", "/x", {})
