"""Chat4All server processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    def __init__(self, data_dir: Path, port: int, log: Path, *, role: str = "all", env: dict[str, str] | None = None) -> None:
        self.data_dir, self.port, self.log, self.role = data_dir, port, log, role
        self.env = env or {}
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> None:
        env = {
            **os.environ,
            "CHAT4ALL_DATA_DIR": str(self.data_dir),
            "CHAT4ALL_PORT": str(self.port),
            "CHAT4ALL_BCRYPT_ROUNDS": "4",
            "CHAT4ALL_ACCESS_LOG": "false",
            **self.env,
            **extra_env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chat4all", "serve", self.role], env=env, stdout=out, stderr=out
            )

    async def ready(self, timeout: float = 30) -> None:
        async def answering() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{self.base_url}/health/ready")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(answering, timeout=timeout, interval=0.1, what="the process to be ready")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


@contextmanager
def embedded_process(tmp_path: Path, *, env: dict[str, str] | None = None) -> Iterator[Process]:
    """A `chat4all serve all` on a free port with its data and log under ``tmp_path``, not yet
    started; stopped with SIGTERM at the end if the test left it running."""
    p = Process(tmp_path / "data", free_port(), tmp_path / "server.log", env=env)
    try:
        yield p
    finally:  # a failing test too: else its server outlives the run
        if p.proc is not None and p.proc.poll() is None:
            p.kill(signal.SIGTERM)
