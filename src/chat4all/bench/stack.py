"""Starts the system under test for a bench run and reads what its processes cost."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = Path(__file__).resolve().parents[3] / "scripts" / "services.sh"
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / _TICKS


def process_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Stack:
    """The Chat4All processes of one run: API URLs to send to, and their pids to measure."""

    api_urls: list[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workdir: Path | None = None

    def usage(self) -> tuple[float, float]:
        """(CPU seconds so far, sum of peak RSS in MB) over the processes this run started."""
        cpu = rss = 0.0
        for p in self.processes:
            if p.poll() is None:
                cpu += process_cpu_s(p.pid)
                rss += process_peak_rss_mb(p.pid)
        return cpu, rss

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def _spawn(role: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "chat4all", "serve", role], env={**os.environ, **env, "CHAT4ALL_PORT": str(port)},
        stdout=out, stderr=out,
    )


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def start_embedded(*, log_dir: Path) -> Stack:
    workdir = Path(tempfile.mkdtemp(prefix="chat4all-bench-"))
    port = free_port()
    env = {"CHAT4ALL_DATA_DIR": str(workdir), "CHAT4ALL_BCRYPT_ROUNDS": "4", "CHAT4ALL_ACCESS_LOG": "false"}
    proc = _spawn("all", port, env, log_dir / "server.log")
    url = f"http://127.0.0.1:{port}"
    stack = Stack(api_urls=[url], processes=[proc], workdir=workdir)
    try:
        _wait_ready(url, proc)
    except Exception:
        stack.stop()
        raise
    return stack


def start_production(*, log_dir: Path, apis: int = 2, routers: int = 1) -> Stack:
    subprocess.run(["bash", str(SERVICES), "up", "postgres", "redis", "etcd", "kafka"], check=True)
    urls = dict(
        line.removeprefix("export ").split("=", 1)
        for line in subprocess.run(["bash", str(SERVICES), "env"], check=True, capture_output=True, text=True).stdout.splitlines()
    )
    urls = {k: v.strip("'") for k, v in urls.items()}
    suffix = secrets.token_hex(4)
    database = f"chat4all_bench_{suffix}"
    import sqlalchemy as sa

    admin_url = sa.engine.make_url(urls["CHAT4ALL_DATABASE_URL"])
    subprocess.run(
        ["psql", admin_url.set(drivername="postgresql").render_as_string(hide_password=False), "-c", f'CREATE DATABASE "{database}"'],
        check=True, capture_output=True,
    )
    env = {
        "CHAT4ALL_DATABASE_URL": admin_url.set(database=database).render_as_string(hide_password=False),
        "CHAT4ALL_EVENT_LOG_URL": urls["CHAT4ALL_EVENT_LOG_URL"],
        "CHAT4ALL_PRESENCE_URL": urls["CHAT4ALL_PRESENCE_URL"],
        "CHAT4ALL_METADATA_URL": urls["CHAT4ALL_METADATA_URL"],
        "CHAT4ALL_NAMESPACE": f"bench-{suffix}",
        "CHAT4ALL_JWT_SECRET": secrets.token_urlsafe(32),
        "CHAT4ALL_BCRYPT_ROUNDS": "4",
        "CHAT4ALL_ACCESS_LOG": "false",
        "CHAT4ALL_DATA_DIR": tempfile.mkdtemp(prefix="chat4all-bench-"),
    }
    subprocess.run([sys.executable, "-m", "chat4all", "migrate"], env={**os.environ, **env}, check=True, capture_output=True)
    stack = Stack(api_urls=[])
    try:
        for i in range(apis):
            port = free_port()
            proc = _spawn("api", port, {**env, "CHAT4ALL_NODE_ID": f"bench-api-{i}"}, log_dir / f"api-{i}.log")
            stack.processes.append(proc)
            stack.api_urls.append(f"http://127.0.0.1:{port}")
            _wait_ready(stack.api_urls[-1], proc)
        for i in range(routers):
            port = free_port()
            proc = _spawn("router", port, {**env, "CHAT4ALL_NODE_ID": f"bench-router-{i}"}, log_dir / f"router-{i}.log")
            stack.processes.append(proc)
            _wait_ready(f"http://127.0.0.1:{port}", proc)
    except Exception:
        stack.stop()
        raise
    return stack
