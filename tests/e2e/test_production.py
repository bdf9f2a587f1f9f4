"""The production profile for real: PostgreSQL, Kafka, Redis and etcd from scripts/services.sh,
two API processes and two routers (R10, R11, R12)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from chat4all.adapters.kafka import delete_namespace
from chat4all.bench.stack import bench_limits
from chat4all.client import ApiError, Chat4AllClient
from tests.conftest import PASSWORD, server_missing, wait_until
from tests.e2e.processes import Process, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.production]

URLS = ("CHAT4ALL_TEST_POSTGRES_URL", "CHAT4ALL_TEST_KAFKA_URL", "CHAT4ALL_TEST_REDIS_URL", "CHAT4ALL_TEST_ETCD_URL")
SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "services.sh"


def _urls() -> dict[str, str]:
    missing = [u for u in URLS if not os.environ.get(u)]
    if missing:
        message = f"production tests need {', '.join(missing)} (make test sets them from scripts/services.sh)"
        server_missing(message)
    return {u: os.environ[u] for u in URLS}


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    apis: list[Process] = field(default_factory=list)
    routers: list[Process] = field(default_factory=list)

    def process(self, role: str, name: str) -> Process:
        p = Process(self.tmp / name, free_port(), self.tmp / f"{name}.log", role=role, env={**self.env, "CHAT4ALL_NODE_ID": name})
        (self.apis if role == "api" else self.routers).append(p)
        return p

    async def start_all(self) -> None:
        for p in [*self.apis, *self.routers]:
            p.start()
        for p in [*self.apis, *self.routers]:
            await p.ready()

    def stop_all(self) -> None:
        for p in [*self.apis, *self.routers]:
            if p.proc is not None and p.proc.poll() is None:
                p.kill(signal.SIGTERM)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    urls = _urls()
    suffix = secrets.token_hex(4)
    pg = sa.engine.make_url(urls["CHAT4ALL_TEST_POSTGRES_URL"])
    database = f"chat4all_e2e_{suffix}"
    admin = await asyncpg.connect(
        host=pg.host, port=pg.port or 5432, user=pg.username, password=pg.password, database=pg.database
    )
    await admin.execute(f'CREATE DATABASE "{database}"')
    env = {
        "CHAT4ALL_DATABASE_URL": pg.set(database=database).render_as_string(hide_password=False),
        "CHAT4ALL_EVENT_LOG_URL": urls["CHAT4ALL_TEST_KAFKA_URL"],
        "CHAT4ALL_PRESENCE_URL": urls["CHAT4ALL_TEST_REDIS_URL"],
        "CHAT4ALL_METADATA_URL": urls["CHAT4ALL_TEST_ETCD_URL"],
        "CHAT4ALL_NAMESPACE": f"e2e-{suffix}",
        "CHAT4ALL_JWT_SECRET": secrets.token_urlsafe(32),
        "CHAT4ALL_ROUTER_SESSION_TIMEOUT_MS": "6000",
        # these tests send as fast as they can from a few users: the abuse limits are not under test
        **bench_limits(flooding=False),
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "chat4all", "migrate"], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stderr
    s = Stack(tmp_path, env)
    try:
        yield s
    finally:
        s.stop_all()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        await delete_namespace(urls["CHAT4ALL_TEST_KAFKA_URL"], env["CHAT4ALL_NAMESPACE"])


async def _login(base_url: str, username: str) -> Chat4AllClient:
    client = Chat4AllClient(base_url)
    await client.login(username, PASSWORD)
    return client


async def _register(base_url: str, *usernames: str) -> None:
    async with Chat4AllClient(base_url) as c:
        for u in usernames:
            await c.register(u, PASSWORD)


async def test_live_delivery_crosses_api_nodes_and_offline_users_catch_up(stack: Stack) -> None:
    api1, api2 = stack.process("api", "api-1"), stack.process("api", "api-2")
    stack.process("router", "router-1")
    await stack.start_all()
    await _register(api1.base_url, "alice", "bob")
    alice = await _login(api1.base_url, "alice")
    bob = await _login(api2.base_url, "bob")
    conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]

    async with bob.websocket() as socket:  # bob's socket is on API 2, alice sends through API 1
        await socket.ping()
        assert (await socket.receive())["type"] == "pong"
        sent = await alice.send_text(conversation_id, "across nodes")
        frame = await socket.receive(timeout=15)
        assert frame["type"] == "message" and frame["message"]["message_id"] == sent["message_id"]
        await socket.ack([sent["message_id"]])
        await wait_until(lambda: _status(alice, sent["message_id"], "DELIVERED"), what="DELIVERED across nodes")

    offline = [await alice.send_text(conversation_id, f"later {i}") for i in range(10)]
    bob_on_1 = await _login(api1.base_url, "bob")
    async with bob_on_1.websocket() as socket:
        received = [(await socket.receive(timeout=15))["message"] for _ in range(10)]
    assert [m["message_id"] for m in received] == [s["message_id"] for s in offline]
    assert [m["sequence_number"] for m in received] == list(range(2, 12))
    for c in (alice, bob, bob_on_1):
        await c.close()


async def _status(client: Chat4AllClient, message_id: str, expected: str) -> bool:
    try:
        return (await client.message_status(message_id))["status"] == expected
    except ApiError:
        return False


async def _stored(client: Chat4AllClient, conversation_id: str) -> list[dict]:
    items: list[dict] = []
    since = 0
    while True:
        page = await client.conversation_messages(conversation_id, since=since, limit=500)
        items.extend(page["items"])
        if len(page["items"]) < 500:
            return items
        since = page["next_since"]


class Traffic:
    """Senders that keep sending into their conversations, recording what was answered 202."""

    def __init__(self, clients: dict[str, Chat4AllClient], conversations: list[tuple[str, str]]) -> None:
        self.clients = clients
        self.conversations = conversations  # (sender, conversation_id)
        self.accepted: dict[str, list[str]] = defaultdict(list)  # conversation → message_ids in 202 order
        self.refused = 0
        self._stop = asyncio.Event()

    async def _send_loop(self, sender: str, conversation_id: str, count: int | None) -> None:
        client = self.clients[sender]
        sent = 0
        while not self._stop.is_set() and (count is None or sent < count):
            message_id = str(uuid.uuid4())
            try:
                answer = await client.send_text(conversation_id, f"n{sent}", message_id=message_id)
            except (ApiError, httpx.TransportError) as exc:
                if isinstance(exc, ApiError) and exc.status != 503:
                    raise
                self.refused += 1  # 503 while a dependency is down: not accepted, the client retries
                await asyncio.sleep(0.05)
                continue
            assert answer["status"] == "accepted"
            self.accepted[conversation_id].append(message_id)
            sent += 1

    async def run(self, per_conversation: int | None) -> None:
        await asyncio.gather(*(self._send_loop(s, c, per_conversation) for s, c in self.conversations))

    def stop(self) -> None:
        self._stop.set()

    def total(self) -> int:
        return sum(len(v) for v in self.accepted.values())

    async def verify(self, reader: Chat4AllClient, timeout: float = 60) -> None:
        """Every 202'd message stored once, sequence numbers dense and in 202 order per conversation."""
        for conversation_id, expected in self.accepted.items():
            async def complete() -> list[dict] | None:
                items = await _stored(reader, conversation_id)
                return items if {m["message_id"] for m in items} >= set(expected) else None

            items = await wait_until(complete, timeout=timeout, interval=0.2, what=f"conversation {conversation_id}")
            assert [m["sequence_number"] for m in items] == list(range(1, len(items) + 1))
            ids = [m["message_id"] for m in items]
            assert len(set(ids)) == len(ids)
            assert [i for i in ids if i in set(expected)] == expected  # send order kept


async def _group_traffic(stack: Stack, conversations: int) -> tuple[Traffic, Chat4AllClient]:
    api1, api2 = stack.apis
    senders = [f"sender{i}" for i in range(10)]
    await _register(api1.base_url, "reader", *senders)
    clients = {s: await _login((api1, api2)[i % 2].base_url, s) for i, s in enumerate(senders)}
    reader = await _login(api1.base_url, "reader")
    pairs = []
    for i in range(conversations):
        sender = senders[i % len(senders)]
        conversation = await clients[sender].create_conversation("group", ["reader", senders[(i + 1) % len(senders)]], name=f"c{i}")
        pairs.append((sender, conversation["conversation_id"]))
    return Traffic(clients, pairs), reader


async def test_a_router_killed_mid_traffic_loses_nothing_and_its_partitions_move_within_30s(stack: Stack) -> None:
    stack.process("api", "api-1")
    stack.process("api", "api-2")
    router1 = stack.process("router", "router-1")
    stack.process("router", "router-2")
    await stack.start_all()
    traffic, reader = await _group_traffic(stack, conversations=50)

    sending = asyncio.create_task(traffic.run(per_conversation=100))  # 5,000 messages
    await wait_until(lambda: _at_least(traffic, 1500), timeout=120, what="1,500 accepted messages")
    router1.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    # one probe per conversation covers every partition, including the dead router's
    # (a probe races the conversation's own sender, so it is checked for presence, not order)
    probes = {c: (await traffic.clients[s].send_text(c, "probe"))["message_id"] for s, c in traffic.conversations}
    await wait_until(lambda: _all_persisted(reader, probes.values()), timeout=60, interval=0.2, what="the probes")
    takeover_s = time.monotonic() - killed_at
    await sending
    await traffic.verify(reader)
    print(f"\nrouter takeover after SIGKILL: {takeover_s:.1f} s; {traffic.total()} messages verified")
    assert takeover_s < 30


async def _at_least(traffic: Traffic, n: int) -> bool:
    return traffic.total() >= n


async def _all_persisted(reader: Chat4AllClient, message_ids) -> bool:
    for message_id in message_ids:
        try:
            await reader.get_message(message_id)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
    return True


def _services(action: str, name: str) -> None:
    done = subprocess.run(["bash", str(SERVICES), action, name], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(400)
async def test_restarting_redis_then_kafka_during_traffic_loses_nothing_answered_202(stack: Stack) -> None:
    stack.process("api", "api-1")
    stack.process("api", "api-2")
    stack.process("router", "router-1")
    await stack.start_all()
    traffic, reader = await _group_traffic(stack, conversations=10)
    sending = asyncio.create_task(traffic.run(per_conversation=None))
    try:
        await wait_until(lambda: _at_least(traffic, 200), timeout=60, what="traffic before the Redis restart")
        await asyncio.to_thread(_services, "down", "redis")
        await asyncio.to_thread(_services, "up", "redis")
        print(f"redis restarted at {traffic.total()} accepted", flush=True)
        before_kafka = traffic.total()
        await wait_until(lambda: _at_least(traffic, before_kafka + 200), timeout=60, what="traffic after Redis")
        await asyncio.to_thread(_services, "down", "kafka")
        await asyncio.to_thread(_services, "up", "kafka")
        print(f"kafka restarted at {traffic.total()} accepted, {traffic.refused} refused", flush=True)
        after = traffic.total()
        await wait_until(lambda: _at_least(traffic, after + 200), timeout=120, what="traffic after Kafka")
    finally:
        traffic.stop()
        await sending
    print(f"\n{traffic.total()} accepted, {traffic.refused} refused with 503 while a server was down")
    await traffic.verify(reader, timeout=120)
    # live push across nodes works again: the node's subscriber reconnected to the new Redis
    sender, conversation_id = traffic.conversations[0]
    reader_on_2 = await _login(stack.apis[1].base_url, "reader")
    async with reader_on_2.websocket() as socket:
        while True:  # drain the catch-up, then the next message is the live one
            await socket.ping()
            frames = [await socket.receive(timeout=15)]
            while frames[-1]["type"] != "pong":
                frames.append(await socket.receive(timeout=15))
            if len(frames) == 1:
                break
        sender_on_1 = traffic.clients[sender]
        live = await sender_on_1.send_text(conversation_id, "after the restarts")
        frame = await socket.receive(timeout=15)
        assert frame["type"] == "message" and frame["message"]["message_id"] == live["message_id"]
    for api in stack.apis:
        ready = httpx.get(f"{api.base_url}/health/ready")
        assert ready.status_code == 200, ready.text
