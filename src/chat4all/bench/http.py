"""The bench's sender side of HTTP: one keep-alive connection per conversation, one request at a
time, requests built as bytes, answers parsed by httptools (the parser uvicorn uses).

A conversation never has two messages in flight (its order is what the bench checks), so it
needs neither a pool nor pipelining; a general client's per-request objects (request, response,
stream, timers, header multidicts) were most of the load generator's CPU, taken from the servers
it measures on a shared machine.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import cast
from urllib.parse import urlsplit

import httptools

IDLE_S = 4.0  # uvicorn closes a keep-alive connection idle for 5 s: reconnect before it would


class Poster:
    """``POST``s to one API node over one connection it keeps open (and reopens when closed)."""

    def __init__(self, url: str, path: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        host = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"POST {parts.path.rstrip('/')}{path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._connection: _Connection | None = None
        self._last = 0.0

    async def connect(self) -> None:
        """Opens the connection now (before the measured load), if it is not open."""
        await self._connected()

    async def _connected(self) -> _Connection:
        connection = self._connection
        if connection is None or connection.closed or time.monotonic() - self._last > IDLE_S:
            self.close()
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, self._host, self._port, ssl=self._ssl
            )
            self._connection = connection
            self._last = time.monotonic()
        return connection

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """(status, body) of the answer; OSError (ConnectionError among them) when the
        connection fails or the answer is not HTTP."""
        connection = await self._connected()
        try:
            return await connection.request(b"%b%d\r\n\r\n%b" % (self._head, len(body), body))
        finally:
            self._last = time.monotonic()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self.closed = False

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self._transport is not None and (self._waiter is None or self._waiter.done()), "one request at a time"
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is one without subclassing it

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc if isinstance(exc, OSError) else ConnectionError("connection closed before the answer"))

    def _fail(self, exc: OSError) -> None:
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    # httptools callbacks ---------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body, self._body = b"".join(self._body), []
        if not self._parser.should_keep_alive():
            self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((self._parser.get_status_code(), body))
