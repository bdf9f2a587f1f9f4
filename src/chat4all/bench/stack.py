"""Starts the system under test for a bench run and reads what its processes cost."""

from __future__ import annotations

import asyncio
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

from chat4all.adapters.kafka import delete_namespace

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
    # production: what the run made on the shared servers, removed by stop()
    kafka_url: str | None = None
    namespace: str | None = None
    database_admin_url: str | None = None
    database: str | None = None

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
        self._clean_up()

    def _clean_up(self) -> None:
        """Drops the run's database and deletes its Kafka topics: what one run leaves behind
        (100k+ rows, a dozen topics) otherwise slows every run after it on the same servers."""
        if self.kafka_url and self.namespace:
            try:
                asyncio.run(delete_namespace(self.kafka_url, self.namespace))
            except Exception as exc:  # noqa: BLE001 - the result is written; say what was left
                print(f"bench: Kafka topics of {self.namespace} not deleted: {exc!r}", file=sys.stderr)
        if self.database_admin_url and self.database:
            dropped = subprocess.run(
                ["psql", self.database_admin_url, "-c", f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'],
                check=False, capture_output=True, text=True,
            )
            if dropped.returncode != 0:
                print(f"bench: database {self.database} not dropped: {dropped.stderr.strip()}", file=sys.stderr)


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


# The bench registers and logs in hundreds of users from one address, and a few senders carry
# the whole rate: the abuse limits would measure themselves. Lifted, except (with a flood) the
# send limits, whose defaults are what keeps the flooder from the others.
SETUP_LIMITS = {
    "CHAT4ALL_REGISTER_PER_ADDRESS_PER_HOUR": "100000000",
    "CHAT4ALL_LOGIN_PER_ADDRESS_PER_MINUTE": "100000000",
    "CHAT4ALL_GROUPS_PER_USER_PER_HOUR": "100000",
}
SEND_LIMITS = {
    "CHAT4ALL_SEND_MESSAGES_PER_MINUTE": "100000000",
    "CHAT4ALL_SEND_RECIPIENTS_PER_MINUTE": "1000000000",
}


def bench_limits(*, flooding: bool) -> dict[str, str]:
    return SETUP_LIMITS if flooding else {**SETUP_LIMITS, **SEND_LIMITS}


def start_embedded(*, log_dir: Path, flooding: bool = False) -> Stack:
    workdir = Path(tempfile.mkdtemp(prefix="chat4all-bench-"))
    port = free_port()
    env = {
        "CHAT4ALL_DATA_DIR": str(workdir),
        "CHAT4ALL_BCRYPT_ROUNDS": "4",
        "CHAT4ALL_ACCESS_LOG": "false",
        **bench_limits(flooding=flooding),
    }
    proc = _spawn("all", port, env, log_dir / "server.log")
    url = f"http://127.0.0.1:{port}"
    stack = Stack(api_urls=[url], processes=[proc], workdir=workdir)
    try:
        _wait_ready(url, proc)
    except Exception:
        stack.stop()
        raise
    return stack


def _services_env(*args: str) -> dict[str, str]:
    out = subprocess.run(["bash", str(SERVICES), "env", *args], check=True, capture_output=True, text=True).stdout
    pairs = (line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    return {k: v.strip("'") for k, v in pairs}


def start_production(
    *, log_dir: Path, apis: int = 2, routers: int = 1, ha: bool = False, flooding: bool = False
) -> Stack:
    """The production profile on the servers of ``scripts/services.sh`` — with ``ha``, on the HA
    profile's replicated engines (``services.sh up --ha``): writes through HAProxy to Patroni's
    primary, reads falling back to the replicas, Kafka RF 3 / min ISR 2, Redis via Sentinel."""
    if ha:
        subprocess.run(["bash", str(SERVICES), "up", "--ha"], check=True)
        urls = _services_env("--ha")
    else:
        subprocess.run(["bash", str(SERVICES), "up", "postgres", "redis", "etcd", "kafka"], check=True)
        urls = _services_env()
    suffix = secrets.token_hex(4)
    database = f"chat4all_bench_{suffix}"
    import sqlalchemy as sa

    admin_url = sa.engine.make_url(urls["CHAT4ALL_DATABASE_URL"])
    subprocess.run(
        ["psql", admin_url.set(drivername="postgresql").render_as_string(hide_password=False), "-c", f'CREATE DATABASE "{database}"'],
        check=True, capture_output=True,
    )
    replicated: dict[str, str] = {
        name: urls[name] for name in ("CHAT4ALL_LOG_REPLICATION_FACTOR", "CHAT4ALL_LOG_MIN_INSYNC_REPLICAS") if name in urls
    }
    if "CHAT4ALL_DATABASE_READ_URL" in urls:
        read_url = sa.engine.make_url(urls["CHAT4ALL_DATABASE_READ_URL"]).set(database=database)
        replicated["CHAT4ALL_DATABASE_READ_URL"] = read_url.render_as_string(hide_password=False)
    env = {
        **replicated,
        "CHAT4ALL_DATABASE_URL": admin_url.set(database=database).render_as_string(hide_password=False),
        "CHAT4ALL_EVENT_LOG_URL": urls["CHAT4ALL_EVENT_LOG_URL"],
        "CHAT4ALL_PRESENCE_URL": urls["CHAT4ALL_PRESENCE_URL"],
        "CHAT4ALL_METADATA_URL": urls["CHAT4ALL_METADATA_URL"],
        "CHAT4ALL_NAMESPACE": f"bench-{suffix}",
        "CHAT4ALL_JWT_SECRET": secrets.token_urlsafe(32),
        "CHAT4ALL_BCRYPT_ROUNDS": "4",
        "CHAT4ALL_ACCESS_LOG": "false",
        "CHAT4ALL_DATA_DIR": tempfile.mkdtemp(prefix="chat4all-bench-"),
        **bench_limits(flooding=flooding),
    }
    admin_psql_url = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    stack = Stack(
        api_urls=[],
        kafka_url=env["CHAT4ALL_EVENT_LOG_URL"],
        namespace=env["CHAT4ALL_NAMESPACE"],
        database_admin_url=admin_psql_url,
        database=database,
    )
    try:
        subprocess.run([sys.executable, "-m", "chat4all", "migrate"], env={**os.environ, **env}, check=True, capture_output=True)
    except subprocess.CalledProcessError:
        stack.stop()
        raise
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
