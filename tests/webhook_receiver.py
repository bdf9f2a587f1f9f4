"""A real HTTP endpoint on 127.0.0.1 that records webhook callbacks and answers as told."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn

from chat4all.domain.webhooks import SIGNATURE_HEADER, verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int  # what the receiver answered

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.json["event_id"]

    def verifies(self, secret: str) -> bool:
        return verify(secret, self.body, self.headers[SIGNATURE_HEADER.lower()], now=int(time.time()))


@dataclass
class Receiver:
    """Answers ``default`` unless ``script`` (popped per request) or ``hold`` says otherwise:
    while ``hold`` is clear, requests are recorded and then wait for it before answering."""

    base_url: str = ""
    default: int = 200
    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    hold: asyncio.Event | None = None

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def count(self, n: int, path: str | None = None) -> list[Received] | None:
        """For ``wait_until``: the requests once there are at least ``n`` (answered or held)."""
        got = self.requests if path is None else self.to(path)
        return list(got) if len(got) >= n else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender went away mid-request (killed): no callback was delivered
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = self.script.pop(0) if self.script else self.default
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Received(scope["path"], headers, body, status))
        if self.hold is not None:
            await self.hold.wait()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    receiver = Receiver(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    server = uvicorn.Server(uvicorn.Config(receiver, log_config=None, lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.should_exit = True
        await task
