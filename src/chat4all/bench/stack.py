"""Starts the system under test for a bench run and reads what its processes cost."""

from __future__ import annotations

import asyncio
import contextlib
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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(parents: set[int]) -> list[int]:
    """Pids whose parent is one of ``parents``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid in parents:
            found.append(int(entry.name))
    return found


# engine → (its pid file under the services folder, what its command line contains)
ENGINES = {
    "postgres": ("postgres/data/postmaster.pid", "postgres"),
    "kafka": ("kafka/kafka.pid", "kafka.Kafka"),
    "redis": ("redis/redis.pid", "redis-server"),
    "etcd": ("etcd/etcd.pid", "etcd"),
}


def services_dir() -> Path:
    """Where ``scripts/services.sh`` keeps its state (pid files): as the script decides it."""
    return Path(os.environ.get("CHAT4ALL_SERVICES_DIR") or SERVICES.parents[1] / ".services")


def engine_pids(state: Path) -> dict[str, list[int]]:
    """The processes of each engine ``services.sh`` runs: its pid file's pid when the command
    line matches, else every process whose command line does; PostgreSQL's with all the
    postmaster's children (one backend per connection, and its background workers)."""
    pids: dict[str, list[int]] = {}
    for name, (pid_file, pattern) in ENGINES.items():
        main: list[int] = []
        with contextlib.suppress(OSError, ValueError):
            pid = int((state / pid_file).read_text().split()[0])
            if pattern in _cmdline(pid):
                main = [pid]
        if not main:  # no pid file (or a stale one): by command line
            main = [
                int(e.name) for e in Path("/proc").iterdir()
                if e.name.isdigit() and _matches(name, pattern, _cmdline(int(e.name)))
            ]
        if name == "postgres" and main:
            main = main + [c for c in _children(set(main)) if c not in main]
        if main:
            pids[name] = main
    return pids


def _matches(name: str, pattern: str, cmdline: str) -> bool:
    if name == "postgres":  # the postmaster: its children are found from it
        return cmdline.split(" ", 1)[0].endswith("/postgres") and " -D " in cmdline
    first = cmdline.split(" ", 1)[0]
    return pattern in cmdline if name == "kafka" else first.rsplit("/", 1)[-1] == pattern


def engine_cpu_s(state: Path) -> dict[str, float]:
    """CPU seconds so far of each engine, summed over its processes (a process's count includes
    the children it reaped, so a PostgreSQL backend that ends between two readings is not lost)."""
    cpu: dict[str, float] = {}
    for name, pids in engine_pids(state).items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):  # ended since listed
                total += process_cpu_s(pid)
        cpu[name] = total
    return cpu


@dataclass
class Stack:
    """The Chat4All processes of one run: API URLs to send to, and their pids to measure."""

    api_urls: list[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)  # aligned with processes: all, api-0, router-0, …
    engines: Path | None = None  # production: services.sh's state folder, to find the engines' pids
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

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds so far of each Chat4All process still running, by role."""
        return {role: process_cpu_s(p.pid) for role, p in zip(self.roles, self.processes, strict=True) if p.poll() is None}

    def engine_cpu(self) -> dict[str, float] | None:
        return None if self.engines is None else engine_cpu_s(self.engines)

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


def server_python() -> str:
    """The Python that runs the servers: this one, or another checkout's (``--server-python``),
    so that two commits are measured by the same load generator."""
    return os.environ.get("CHAT4ALL_BENCH_SERVER_PYTHON") or sys.executable


def _spawn(role: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [server_python(), "-m", "chat4all", "serve", role], env={**os.environ, **env, "CHAT4ALL_PORT": str(port)},
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
    stack = Stack(api_urls=[url], processes=[proc], roles=["all"], workdir=workdir)
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
        engines=None if ha else services_dir(),
    )
    try:
        subprocess.run([server_python(), "-m", "chat4all", "migrate"], env={**os.environ, **env}, check=True, capture_output=True)
    except subprocess.CalledProcessError:
        stack.stop()
        raise
    try:
        for i in range(apis):
            port = free_port()
            proc = _spawn("api", port, {**env, "CHAT4ALL_NODE_ID": f"bench-api-{i}"}, log_dir / f"api-{i}.log")
            stack.processes.append(proc)
            stack.roles.append(f"api-{i}")
            stack.api_urls.append(f"http://127.0.0.1:{port}")
            _wait_ready(stack.api_urls[-1], proc)
        for i in range(routers):
            port = free_port()
            proc = _spawn("router", port, {**env, "CHAT4ALL_NODE_ID": f"bench-router-{i}"}, log_dir / f"router-{i}.log")
            stack.processes.append(proc)
            stack.roles.append(f"router-{i}")
            _wait_ready(f"http://127.0.0.1:{port}", proc)
    except Exception:
        stack.stop()
        raise
    return stack
