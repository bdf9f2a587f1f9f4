"""Chat4All server processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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

    async def ready(self) -> None:
        async def answering() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{self.base_url}/health/ready")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(answering, timeout=30, interval=0.1, what="the process to be ready")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
