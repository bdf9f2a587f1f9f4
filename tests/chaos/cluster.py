"""The HA profile under test: the engines of ``scripts/services.sh --ha`` and the Chat4All
processes this suite starts on them (2 API nodes, 2 routers, 2 webhook workers)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from aiokafka import AIOKafkaClient
from aiokafka.structs import TopicPartition

from chat4all.adapters.kafka import bootstrap_servers, delete_namespace
from chat4all.bench.stack import SETUP_LIMITS
from tests.e2e.processes import Process, free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services.sh"


def services(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(["bash", str(SERVICES), *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"services.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def ha_env() -> dict[str, str]:
    pairs = (line.removeprefix("export ").split("=", 1) for line in services("env", "--ha").splitlines())
    return {k: v.strip("'") for k, v in pairs}


def pid_alive(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


class Engines:
    """The HA engines: who leads what, and SIGKILL of one member."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def up(self, *members: str) -> None:
        services("up", "--ha", *members)

    def pid(self, member: str) -> int | None:
        out = services("pid", "--ha", member).strip()
        return int(out) if out else None

    def kill(self, *members: str) -> None:
        """SIGKILL, as a crash or a pulled plug: nothing is flushed, nothing is handed over."""
        pids = [p for p in (self.pid(m) for m in members) if p]
        if not pids:
            raise AssertionError(f"none of {members} is running")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in pids):
            if time.monotonic() > deadline:
                raise AssertionError(f"{members} still alive after SIGKILL")
            time.sleep(0.05)

    async def kafka_busiest_leader(self) -> str:
        client = AIOKafkaClient(bootstrap_servers=bootstrap_servers(self.env["CHAT4ALL_EVENT_LOG_URL"]))
        await client.bootstrap()
        try:
            await client.force_metadata_update()
            leads: dict[int, int] = {}
            for topic in client.cluster.topics(exclude_internal_topics=False):
                for partition in client.cluster.partitions_for_topic(topic) or ():
                    leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
                    if leader is not None and leader >= 0:
                        leads[leader] = leads.get(leader, 0) + 1
        finally:
            await client.close()
        return f"kafka-{max(leads, key=lambda n: leads[n])}"

    async def postgres_primary(self) -> int:
        for m in await self.patroni_cluster():
            if m["role"] == "leader":
                return int(m["name"].removeprefix("pg"))
        raise AssertionError("Patroni names no leader")

    async def patroni_cluster(self) -> list[dict[str, Any]]:
        """The members as the first Patroni that answers sees them."""
        async with httpx.AsyncClient(timeout=3) as http:
            for url in self.env["CHAT4ALL_HA_PATRONI_URLS"].split(","):
                try:
                    return list((await http.get(f"{url}/cluster")).json()["members"])
                except (httpx.HTTPError, ValueError):
                    continue
        return []

    def redis_master(self) -> int:
        for host in urlsplit(self.env["CHAT4ALL_PRESENCE_URL"]).netloc.split(","):
            h, _, port = host.rpartition(":")
            out = subprocess.run(["redis-cli", "-h", h, "-p", port, "sentinel", "get-master-addr-by-name", "chat4all"],
                                 capture_output=True, text=True, timeout=5).stdout.split()
            if len(out) == 2:
                return int(out[1]) - 16378
        raise AssertionError("no Sentinel names a master")

    def etcd_leader(self) -> int:
        endpoints = urlsplit(self.env["CHAT4ALL_METADATA_URL"]).netloc
        out = subprocess.run(["etcdctl", f"--endpoints={endpoints}", "endpoint", "status", "-w", "json"],
                             capture_output=True, text=True, timeout=10, env={**os.environ, "ETCDCTL_API": "3"}).stdout
        for status in json.loads(out):
            if status["Status"]["header"]["member_id"] == status["Status"]["leader"]:
                return (int(status["Endpoint"].rsplit(":", 1)[1]) - 22379) // 2 + 1
        raise AssertionError("etcd names no leader")


@dataclass
class Chat4All:
    """The Chat4All processes of one run, on their own database and namespace."""

    tmp: Path
    env: dict[str, str]
    apis: list[Process] = field(default_factory=list)
    routers: list[Process] = field(default_factory=list)
    webhooks: list[Process] = field(default_factory=list)

    @property
    def processes(self) -> list[Process]:
        return [*self.apis, *self.routers, *self.webhooks]

    @property
    def api_urls(self) -> list[str]:
        return [p.base_url for p in self.apis]

    def add(self, role: str, name: str) -> Process:
        p = Process(self.tmp / name, free_port(), self.tmp / f"{name}.log", role=role, env={**self.env, "CHAT4ALL_NODE_ID": name})
        {"api": self.apis, "router": self.routers, "webhooks": self.webhooks}[role].append(p)
        return p

    async def start(self, *processes: Process) -> None:
        for p in processes:
            p.start()
        await asyncio.gather(*(ready(p) for p in processes))

    def stop(self) -> None:
        for p in self.processes:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.processes:
            if p.proc is not None:
                try:
                    p.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.proc.kill()


async def ready(p: Process) -> None:
    """Room for a machine that also runs three of every engine."""
    await p.ready(timeout=120)


async def _as_admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(admin_url: str, name: str) -> None:
    await _as_admin(admin_url, f'CREATE DATABASE "{name}" OWNER chat4all')


async def drop_database(admin_url: str, name: str) -> None:
    await _as_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_env(env: dict[str, str], tmp: Path) -> tuple[dict[str, str], str, str]:
    """The Chat4All environment of one run: (env, database name, namespace)."""
    suffix = secrets.token_hex(4)
    database, namespace = f"chat4all_chaos_{suffix}", f"chaos-{suffix}"
    url = env["CHAT4ALL_DATABASE_URL"].rsplit("/", 1)[0]
    read_url = env["CHAT4ALL_DATABASE_READ_URL"].rsplit("/", 1)[0]
    app = {
        "CHAT4ALL_DATABASE_URL": f"{url}/{database}",
        "CHAT4ALL_DATABASE_READ_URL": f"{read_url}/{database}",
        "CHAT4ALL_EVENT_LOG_URL": env["CHAT4ALL_EVENT_LOG_URL"],
        "CHAT4ALL_LOG_REPLICATION_FACTOR": env["CHAT4ALL_LOG_REPLICATION_FACTOR"],
        "CHAT4ALL_LOG_MIN_INSYNC_REPLICAS": env["CHAT4ALL_LOG_MIN_INSYNC_REPLICAS"],
        "CHAT4ALL_PRESENCE_URL": env["CHAT4ALL_PRESENCE_URL"],
        "CHAT4ALL_METADATA_URL": env["CHAT4ALL_METADATA_URL"],
        "CHAT4ALL_BLOB_URL": f"file://{tmp / 'files'}",
        "CHAT4ALL_NAMESPACE": namespace,
        "CHAT4ALL_JWT_SECRET": secrets.token_urlsafe(32),
        "CHAT4ALL_ROUTER_SESSION_TIMEOUT_MS": "6000",
        "CHAT4ALL_WEBHOOKS_CLAIM_TTL_S": "10",
        "CHAT4ALL_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CHAT4ALL_WEBHOOKS_RETRY_BASE_S": "0.5",
        # 100 users registered and logged in from one address in seconds: a load generator's
        # set-up, not what the limits are for; the send limits stay at their defaults
        **SETUP_LIMITS,
    }
    return app, database, namespace


async def clean_up(env: dict[str, str], database: str, namespace: str) -> None:
    await delete_namespace(env["CHAT4ALL_EVENT_LOG_URL"], namespace)
    await drop_database(env["CHAT4ALL_HA_POSTGRES_ADMIN_URL"], database)
