"""What the chat demos share: a server (started here unless one is given), users, and steps
that say what they check and stop loudly when the check fails."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from chat4all.client import Chat4AllClient, Socket

PASSWORD = "demo-password-123"
T = TypeVar("T")


class DemoFailed(AssertionError):
    """A demo's check did not hold: the platform did not do what the step says."""


class Narrator:
    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.checks = 0

    def say(self, text: str) -> None:
        self.echo(f"  {text}")

    def step(self, text: str) -> None:
        self.echo(f"▸ {text}")

    def check(self, condition: bool, what: str, detail: Any = "") -> None:
        if not condition:
            self.echo(f"  ✗ FAILED: {what} {detail}".rstrip())
            raise DemoFailed(f"{what} {detail}".rstrip())
        self.checks += 1
        self.echo(f"  ✓ {what}")

    async def until(self, probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 15.0) -> T:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = await probe()
            if last:
                self.check(True, what)
                return last
            await asyncio.sleep(0.1)
        self.check(False, what, f"(not within {timeout:g} s)")
        raise AssertionError  # unreachable


def tag() -> str:
    return secrets.token_hex(3)


async def user(url: str, name: str) -> Chat4AllClient:
    client = Chat4AllClient(url, timeout=30)
    await client.register(name, PASSWORD)
    await client.login(name, PASSWORD)
    return client


async def next_frame(sock: Socket, kind: str, timeout: float = 15.0) -> dict[str, Any]:
    """The next frame of a kind (others are skipped); raises DemoFailed when none comes."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = await sock.receive(timeout=left)
        except TimeoutError:
            break
        if frame.get("type") == kind:
            return frame
    raise DemoFailed(f"no {kind!r} frame within {timeout:g} s")


@asynccontextmanager
async def server_at(url: str | None, echo: Callable[[str], None], env: dict[str, str] | None = None) -> AsyncIterator[tuple[str, Path | None]]:
    """The given server, or `chat4all serve all` started here in a temporary directory."""
    if url is not None:
        yield url.rstrip("/"), None
        return
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="chat4all-demo-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT4ALL_")}
    child_env.update(
        CHAT4ALL_DATA_DIR=str(workdir / "data"),
        CHAT4ALL_PORT=str(port),
        CHAT4ALL_ACCESS_LOG="false",
        CHAT4ALL_LOG_LEVEL="WARNING",
        **(env or {}),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat4all", "serve", "all", env=child_env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 60
            while True:
                if process.returncode is not None:
                    raise DemoFailed(f"the server exited with {process.returncode}")
                try:
                    if (await http.get(f"{base}/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise DemoFailed("the server did not become ready within 60 s")
                await asyncio.sleep(0.2)
        echo(f"server: started `chat4all serve all` (pid {process.pid}) at {base}")
        yield base, workdir
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=30)
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
