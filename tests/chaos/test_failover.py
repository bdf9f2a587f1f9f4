"""R11 for real: the HA profile keeps every accepted message while each engine process is
SIGKILLed in turn under steady traffic.

One stack (``scripts/services.sh up --ha``: Kafka ×3, PostgreSQL ×3 under Patroni, Redis +
Sentinel ×3, etcd ×3; Chat4All: 2 API nodes behind the nginx gateway, 2 routers, 2 webhook
workers) carries ~200 sends/s through the gateway
over 50 conversations, recipients on WebSockets that ack, and a webhook receiver registered by
10 of the senders. Each test kills one process (the member that leads: the Kafka broker leading
the most partitions, the PostgreSQL primary's whole node, the Redis master, the etcd leader; an
API node, a router, a webhook worker), keeps the traffic on, brings the member back, and then
counts: every accepted send stored exactly once, dense and in send order per conversation, and
received by its recipient (live or on catch-up); every status change of the webhook senders'
messages called back (deduplicated by event_id) in order; the longest run of failed sends a
client saw, and when p99 accept was back under 200 ms. Results: bench-out/chaos/results.json
and docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from chat4all.client import Chat4AllClient
from tests.chaos.cluster import ROOT, Chat4All, Engines, clean_up, create_database, ha_env, ready, run_env, services
from tests.chaos.traffic import Conversation, Inbox, Senders, longest_outage, p99, p99_recovery
from tests.conftest import PASSWORD, server_missing, wait_until
from tests.e2e.gateway import Gateway
from tests.webhook_receiver import Receiver, running_receiver

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600), pytest.mark.asyncio(loop_scope="module")]

RATE = float(os.environ.get("CHAT4ALL_CHAOS_RATE", "200"))
CONVERSATIONS = 50
WEBHOOK_SENDERS = 10
BEFORE_S, AFTER_S = 5.0, 20.0  # traffic before and after the kill
RESULTS = ROOT / "bench-out" / "chaos" / "results.json"
results: dict[str, dict[str, Any]] = {}


@dataclass
class Run:
    engines: Engines
    app: Chat4All
    db_url: str
    conversations: list[Conversation]
    inboxes: list[Inbox]
    receiver: Receiver
    session: aiohttp.ClientSession
    namespace: str
    gateway: str  # the URL clients use
    webhook_senders: set[str] = field(default_factory=set)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Run]:
    if os.environ.get("CHAT4ALL_CHAOS") == "0":
        server_missing("CHAT4ALL_CHAOS=0: the chaos suite (it starts the HA profile) is switched off")
    tmp = tmp_path_factory.mktemp("chaos")
    was_up = "stopped" not in await asyncio.to_thread(services, "status", "--ha")
    await asyncio.to_thread(services, "up", "--ha")
    env = await asyncio.to_thread(ha_env)
    engines = Engines(env)
    app_env, database, namespace = run_env(env, tmp)
    await create_database(env["CHAT4ALL_HA_POSTGRES_ADMIN_URL"], database)
    app = Chat4All(tmp, {**app_env, "CHAT4ALL_BCRYPT_ROUNDS": "4", "CHAT4ALL_ACCESS_LOG": "false"})
    gateway: Gateway | None = None
    try:
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "chat4all", "migrate"], env={**os.environ, **app_env}, check=True
        )
        for i in (1, 2):
            app.add("api", f"api-{i}")
            app.add("router", f"router-{i}")
            app.add("webhooks", f"webhooks-{i}")
        await app.start(*app.processes)
        gateway = Gateway(tmp / "gateway", [f"127.0.0.1:{p.port}" for p in app.apis], jwt_secret=app_env["CHAT4ALL_JWT_SECRET"])
        await gateway.start()
        connector = aiohttp.TCPConnector(ssl=gateway.trust(), limit=0)
        async with running_receiver() as receiver, aiohttp.ClientSession(connector=connector) as session:
            r = await _users_and_conversations(
                app, engines, receiver, session, app_env["CHAT4ALL_DATABASE_URL"], namespace, gateway.url
            )
            try:
                yield r
            finally:
                for inbox in r.inboxes:
                    await inbox.stop()
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(results, indent=2))
    finally:
        if gateway is not None:
            gateway.stop()
        app.stop()
        await clean_up(env, database, namespace)
        if was_up:  # whatever a failed test left dead comes back for the next run
            await asyncio.to_thread(subprocess.run, ["bash", str(ROOT / "scripts" / "services.sh"), "up", "--ha"], check=False)
        else:  # started for this suite: its ~1.7 GB and its idle CPU are not left to the tests after it
            await asyncio.to_thread(subprocess.run, ["bash", str(ROOT / "scripts" / "services.sh"), "down", "--ha"], check=False)


async def _users_and_conversations(
    app: Chat4All, engines: Engines, receiver: Receiver, session: aiohttp.ClientSession, db_url: str, namespace: str,
    gateway: str,
) -> Run:
    """Users, conversations and webhooks are made on the nodes directly (the gateway's stricter
    /v1/auth/* limit is per address: it is not what this suite measures); traffic and sockets
    go through the gateway."""
    conversations: list[Conversation] = []
    inboxes: list[Inbox] = []
    webhook_senders: set[str] = set()
    async with Chat4AllClient(app.api_urls[0]) as anon:
        for i in range(CONVERSATIONS):
            sender, recipient = f"chaos-s{i}", f"chaos-r{i}"
            for name in (sender, recipient):
                await anon.register(name, PASSWORD)
            async with Chat4AllClient(app.api_urls[i % 2]) as s, Chat4AllClient(app.api_urls[i % 2]) as r:
                await s.login(sender, PASSWORD)
                tokens = await r.login(recipient, PASSWORD)
                conv = await s.create_conversation("private", [recipient])
                if i < WEBHOOK_SENDERS:
                    await s.request("POST", "/v1/webhooks", expect=(201,), json={"url": receiver.url(f"/{sender}")})
                    webhook_senders.add(sender)
                assert s.access_token is not None
                conversations.append(Conversation(conv["conversation_id"], s.access_token, recipient))
                inboxes.append(Inbox([gateway], recipient, tokens["access_token"], i))
    for inbox in inboxes:
        inbox.start(session)
    await wait_until(_all(inboxes), timeout=30, what="every recipient's socket")
    dsn = db_url.replace("postgresql+asyncpg", "postgresql")
    return Run(engines, app, dsn, conversations, inboxes, receiver, session, namespace, gateway, webhook_senders)


def _all(inboxes: list[Inbox]) -> Callable[[], Awaitable[bool]]:
    async def connected() -> bool:
        return all(i.connected.is_set() for i in inboxes)

    return connected


async def _phase(run: Run, name: str, kill: Callable[[], Awaitable[Any]], recover: Callable[[], Awaitable[Any]],
                 *, target_s: float) -> dict[str, Any]:
    """Traffic; the kill after BEFORE_S; traffic for AFTER_S more; the member back; then counts."""
    senders = Senders([run.gateway], run.conversations, rate=RATE)
    before = {c.conversation_id: len(c.accepted) for c in run.conversations}
    traffic = asyncio.create_task(senders.run(run.session, BEFORE_S + AFTER_S))
    await asyncio.sleep(BEFORE_S)
    fault_at = time.monotonic()
    killed = await kill()
    await traffic
    await recover()
    new = {c.conversation_id: c.accepted[before[c.conversation_id]:] for c in run.conversations}
    accepted = [m for ids in new.values() for m in ids]
    check = await _settled(run, accepted)
    result = {
        "fault": name,
        "killed": killed,
        "sends_accepted": len(accepted),
        "sends_given_up": len(senders.given_up),
        "failed_attempts": sum(not a.ok for a in senders.attempts),
        "failures_seen": dict(Counter(a.outcome for a in senders.attempts if not a.ok)),
        "slowest_failure_s": round(max((a.ended - a.started for a in senders.attempts if not a.ok), default=0), 2),
        "outage_s": round(longest_outage(senders.attempts), 2),
        "p99_accept_ms": round(p99(senders.accepts) * 1000),
        "max_accept_ms": round(max((a.latency for a in senders.accepts), default=0) * 1000),
        "p99_back_under_200ms_after_s": p99_recovery(senders.accepts, fault_at=fault_at),
        "target_s": target_s,
        **check,
    }
    results[name] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    return result


async def _settled(run: Run, accepted: list[str]) -> dict[str, Any]:
    """Waits until the phase's messages are stored, received and called back (or 120 s), then counts."""
    conn = await asyncpg.connect(run.db_url)
    try:
        async def stored_all() -> bool:
            n = await conn.fetchval("SELECT count(*) FROM messages WHERE message_id = ANY($1::text[])", accepted)
            return n == len(accepted)

        async def received_all() -> bool:
            got = {m for inbox in run.inboxes for m in inbox.received}
            return all(m in got for m in accepted)

        async def called_back_all() -> bool:
            return not (await _webhook_check(run, conn, accepted))["webhook_missing"]

        for condition, what in ((stored_all, "stored"), (received_all, "received"), (called_back_all, "called back")):
            try:
                await wait_until(condition, timeout=120, interval=0.5, what=f"every accepted message {what}")
            except AssertionError:
                break  # counted below
        rows = await conn.fetch(
            "SELECT conversation_id, sequence_number, message_id FROM messages WHERE conversation_id = ANY($1::text[])"
            " ORDER BY conversation_id, sequence_number",
            [c.conversation_id for c in run.conversations],
        )
        by_conv: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for row in rows:
            by_conv[row["conversation_id"]].append((row["sequence_number"], row["message_id"]))
        stored = {mid for rs in by_conv.values() for _, mid in rs}
        reordered = not_dense = 0
        duplicated = len(rows) - len(stored)
        for c in run.conversations:
            stored_rows = by_conv.get(c.conversation_id, [])
            if [seq for seq, _ in stored_rows] != list(range(1, len(stored_rows) + 1)):
                not_dense += 1
            in_store_order = [mid for _, mid in stored_rows if mid in set(c.accepted)]
            if in_store_order != [m for m in c.accepted if m in stored]:
                reordered += 1
        received: dict[str, int] = {}
        for inbox in run.inboxes:
            received.update(inbox.received)
        return {
            "lost": sum(m not in stored for m in accepted),
            "duplicated": duplicated,
            "reordered_conversations": reordered,
            "conversations_not_dense": not_dense,
            "not_received": sum(m not in received for m in accepted),
            "received_again": sum(max(received.get(m, 0) - 1, 0) for m in accepted),
            **await _webhook_check(run, conn, accepted),
        }
    finally:
        await conn.close()


async def _webhook_check(run: Run, conn: asyncpg.Connection, accepted: list[str]) -> dict[str, Any]:
    """Every status change of a webhook sender's message has its callback; repeats carry the
    same event_id; per message, callbacks arrive in status order."""
    history = await conn.fetch(
        "SELECT h.message_id, h.username, h.channel, h.status FROM status_history h JOIN messages m USING (message_id)"
        " WHERE m.sender = ANY($1::text[]) AND h.message_id = ANY($2::text[])",
        sorted(run.webhook_senders), accepted,
    )
    expected = {(r["message_id"], r["username"], r["channel"], r["status"]) for r in history}
    seen: dict[str, tuple[str, str, str, str]] = {}
    order: dict[str, list[str]] = defaultdict(list)
    repeats = 0
    phase = set(accepted)
    for request in list(run.receiver.requests):
        body = request.json
        d = body["data"]
        if d["message_id"] not in phase:
            continue
        change = (d["message_id"], d["username"], d["channel"], d["status"])
        if body["event_id"] in seen:
            repeats += 1
            continue
        seen[body["event_id"]] = change
        order[d["message_id"]].append(d["status"])
    got = set(seen.values())
    rank = {"SENT": 0, "DELIVERED": 1, "READ": 2, "FAILED": 3}
    out_of_order = sum(1 for statuses in order.values() if [rank[s] for s in statuses] != sorted(rank[s] for s in statuses))
    return {
        "status_changes": len(expected),
        "webhook_missing": len(expected - got),
        "webhook_two_ids_for_one_change": len(seen) - len(got),
        "webhook_repeats_same_id": repeats,
        "webhook_out_of_order": out_of_order,
    }


def _assert_held(result: dict[str, Any]) -> None:
    assert result["sends_accepted"] > RATE * (BEFORE_S + AFTER_S) * 0.5, result
    assert result["lost"] == 0, result
    assert result["duplicated"] == 0, result
    assert result["reordered_conversations"] == 0 and result["conversations_not_dense"] == 0, result
    assert result["not_received"] == 0, result
    assert result["webhook_missing"] == 0 and result["webhook_two_ids_for_one_change"] == 0, result
    assert result["webhook_out_of_order"] == 0, result
    assert result["sends_given_up"] == 0, result
    # R11.2: under 30 s for every fault; the stricter goals (10 s for a Kafka broker, the Redis
    # master, an API node) are reported against target_s in docs/reliability.md
    assert result["outage_s"] < 30, result


async def _restart(run: Run, process: Any) -> None:
    process.start()
    await ready(process)


async def test_topics_have_three_replicas_and_refuse_writes_below_two(run: Run) -> None:
    bootstrap = run.engines.env["CHAT4ALL_EVENT_LOG_URL"].removeprefix("kafka://")
    for topic in ("message.events", "status.events"):
        out = await asyncio.to_thread(
            services, "kafka-tool", "TopicCommand", "--bootstrap-server", bootstrap, "--describe", "--topic", f"{run.namespace}.{topic}"
        )
        assert "ReplicationFactor: 3" in out and "min.insync.replicas=2" in out, out
        replicas = [line for line in out.splitlines() if "Leader:" in line]
        assert replicas and all(line.split("Isr:")[1].strip().count(",") == 2 for line in replicas), out


async def test_kafka_broker_leading_most_partitions(run: Run) -> None:
    member: list[str] = []

    async def kill() -> str:
        member.append(await run.engines.kafka_busiest_leader())
        await asyncio.to_thread(run.engines.kill, member[0])
        return member[0]

    _assert_held(await _phase(run, "Kafka broker (leader of most partitions)", kill,
                              lambda: asyncio.to_thread(run.engines.up, member[0]), target_s=10))


async def _read_history(run: Run, answers: Counter[str], stop: asyncio.Event) -> None:
    """R11.4: history keeps being read while the primary is gone (served by a replica)."""
    c = run.conversations[0]
    headers = {"authorization": f"Bearer {c.sender_token}"}
    while not stop.is_set():
        try:
            async with run.session.get(f"{run.gateway}/v1/conversations/{c.conversation_id}/messages?limit=5", headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=10)) as r:
                await r.read()
                answers[str(r.status)] += 1
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            answers[type(exc).__name__] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def test_postgres_primary_node(run: Run) -> None:
    node: list[int] = []
    reads: Counter[str] = Counter()
    stop_reading = asyncio.Event()
    reader: list[asyncio.Task[None]] = []

    async def kill() -> str:
        node.append(await run.engines.postgres_primary())
        await asyncio.to_thread(run.engines.kill, f"patroni-{node[0]}", f"postgres-{node[0]}")
        reader.append(asyncio.create_task(_read_history(run, reads, stop_reading)))
        return f"patroni-{node[0]} + its postgres"

    async def recover() -> None:
        stop_reading.set()
        await reader[0]
        await asyncio.to_thread(run.engines.up, f"patroni-{node[0]}")  # rejoins as a replica (pg_rewind)

    result = await _phase(run, "PostgreSQL primary (Patroni node), restarted", kill, recover, target_s=30)
    members = await run.engines.patroni_cluster()
    result["rejoined_as"] = next((m["role"] for m in members if m["name"] == f"pg{node[0]}"), None)
    result["history_reads_after_kill"] = dict(reads)
    _assert_held(result)
    assert result["rejoined_as"] in ("replica", "sync_standby"), members
    assert reads["200"] >= 0.9 * sum(reads.values()), reads


async def test_redis_master(run: Run) -> None:
    node: list[int] = []

    async def kill() -> str:
        node.append(await asyncio.to_thread(run.engines.redis_master))
        await asyncio.to_thread(run.engines.kill, f"redis-{node[0]}")
        return f"redis-{node[0]}"

    _assert_held(await _phase(run, "Redis master", kill, lambda: asyncio.to_thread(run.engines.up, f"redis-{node[0]}"),
                              target_s=10))


async def test_etcd_leader(run: Run) -> None:
    node: list[int] = []

    async def kill() -> str:
        node.append(await asyncio.to_thread(run.engines.etcd_leader))
        await asyncio.to_thread(run.engines.kill, f"etcd-{node[0]}")
        return f"etcd-{node[0]}"

    _assert_held(await _phase(run, "etcd member (the leader)", kill,
                              lambda: asyncio.to_thread(run.engines.up, f"etcd-{node[0]}"), target_s=30))


@pytest.mark.parametrize(
    ("role", "fault", "target_s"),
    [("api", "API node", 10), ("router", "router", 30), ("webhooks", "webhook worker", 30)],
    ids=["api-node", "router", "webhook-worker"],
)
async def test_chat4all_process(run: Run, role: str, fault: str, target_s: float) -> None:
    victim = {"api": run.app.apis, "router": run.app.routers, "webhooks": run.app.webhooks}[role][0]

    async def kill() -> str:
        victim.kill()
        return f"{role}-1"

    _assert_held(await _phase(run, fault, kill, lambda: _restart(run, victim), target_s=target_s))
