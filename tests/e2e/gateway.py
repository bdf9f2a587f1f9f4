"""A real nginx gateway (deploy/nginx/) for end-to-end tests: rendered by
`scripts/services.sh gateway-config` into a test directory, on free ports, in front of the test's
own API nodes, and stopped by its own pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import server_missing, wait_until
from tests.e2e.processes import free_port

SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "services.sh"


class Gateway:
    def __init__(self, directory: Path, upstreams: list[str], *, jwt_secret: str, **settings: str) -> None:
        self.dir = directory
        self.https_port, self.http_port = free_port(), free_port()
        self.jwt_secret = jwt_secret
        self.settings = {
            "CHAT4ALL_GATEWAY_DIR": str(directory),
            "CHAT4ALL_GATEWAY_HTTPS_PORT": str(self.https_port),
            "CHAT4ALL_GATEWAY_HTTP_PORT": str(self.http_port),
            "CHAT4ALL_GATEWAY_UPSTREAMS": " ".join(upstreams),
            "CHAT4ALL_GATEWAY_WORKERS": "1",
            **settings,
        }
        self.url = f"https://127.0.0.1:{self.https_port}"
        self.ca = str(directory / "tls" / "ca.crt")
        self.pid: int | None = None

    def render(self) -> Path:
        """Installs nginx if missing (services.sh, as on a fresh machine) and renders."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT4ALL_GATEWAY_")}
        done = subprocess.run(
            ["bash", str(SERVICES), "gateway-config"], env={**env, **self.settings}, capture_output=True, text=True, timeout=600
        )
        if shutil.which("nginx") is None:
            server_missing(f"nginx is not installed (scripts/services.sh gateway-config): {done.stderr[-1500:]}")
        assert done.returncode == 0, done.stderr
        return Path(done.stdout.strip().splitlines()[-1])

    async def start(self) -> None:
        conf = self.render()
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin"), "CHAT4ALL_JWT_SECRET": self.jwt_secret}
        started = subprocess.run(
            ["nginx", "-p", f"{self.dir}/", "-c", str(conf), "-g", f"pid {self.dir}/nginx.pid; error_log {self.error_log};"],
            env=env, capture_output=True, text=True, timeout=30,
        )
        assert started.returncode == 0, started.stderr
        self.pid = int((self.dir / "nginx.pid").read_text())

        async def answering() -> bool:
            try:
                async with self.client() as http:
                    return (await http.get("/health/live")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(answering, timeout=30, interval=0.1, what="the gateway to answer")

    def stop(self) -> None:
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGQUIT)  # graceful: finish requests in flight, then exit
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:  # its workers end first
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def trust(self) -> ssl.SSLContext:
        """Trusts the gateway's local CA only."""
        return ssl.create_default_context(cafile=self.ca)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, verify=self.trust(), **kwargs)

    @property
    def access_log(self) -> Path:
        return self.dir / "logs" / "access.log"

    @property
    def error_log(self) -> Path:
        return self.dir / "logs" / "error.log"

    def access_entries(self) -> list[dict[str, Any]]:
        """The access log, one JSON object a line (the log is flushed within a second)."""
        if not self.access_log.exists():
            return []
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
