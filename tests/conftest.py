"""Shared fixtures: a real Chat4All server on a loopback port, and logged-in API clients."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
import uvicorn
from fastapi import FastAPI

from chat4all.runtime import create_app
from chat4all.client import ApiError, Chat4AllClient
from chat4all.config import Settings


def server_missing(message: str) -> NoReturn:
    """A real server the test needs is not there: skipped on a developer's machine, but a
    failure in CI, where a real-server test must never be skipped silently."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)

T = TypeVar("T")
PASSWORD = "correct-horse-battery"


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The embedded server's settings; ``@pytest.mark.settings(name=value)`` changes some."""
    marker = request.node.get_closest_marker("settings")
    return Settings(
        data_dir=tmp_path / "data",
        bcrypt_rounds=4,
        access_log=False,
        node_id="test-node",
        router_poll_interval_s=0.05,
        **(marker.kwargs if marker else {}),
    )


@dataclass
class RunningServer:
    base_url: str
    app: FastAPI

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


async def start_server(settings: Settings) -> tuple[RunningServer, uvicorn.Server, asyncio.Task[None]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"port": port})
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until(lambda: _started(server, task), timeout=15, what="the server to start")
    return RunningServer(f"http://127.0.0.1:{port}", app), server, task


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # raises the startup error
        raise RuntimeError("server exited during startup")
    return server.started


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    running, uv, task = await start_server(settings)
    yield running
    uv.should_exit = True
    await task


@pytest.fixture
async def make_user(server: RunningServer) -> AsyncIterator[Callable[..., Awaitable[Chat4AllClient]]]:
    """Registers a user and returns a client logged in as them."""
    clients: list[Chat4AllClient] = []

    async def make(username: str, password: str = PASSWORD) -> Chat4AllClient:
        client = Chat4AllClient(server.base_url)
        clients.append(client)
        await client.register(username, password)
        await client.login(username, password)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def anonymous(server: RunningServer) -> AsyncIterator[Chat4AllClient]:
    async with Chat4AllClient(server.base_url) as client:
        yield client


async def wait_until(
    condition: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """Polls ``condition`` until it returns something truthy; fails the test after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def persisted(client: Chat4AllClient, message_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The message once the router has stored it."""

    async def fetch() -> dict[str, Any] | None:
        try:
            return await client.get_message(message_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    return await wait_until(fetch, timeout=timeout, what=f"message {message_id} to be persisted")
