#!/usr/bin/env python3
"""CPU and cyclic garbage of the SQL hot paths, against a real PostgreSQL.

Times, in this (client) process, the CPU spent per 1,000 messages stored by ``persist_batch``
(the router's path), per 1,000 deliveries moved by ``advance_many`` (receipts, group-committed
in the API process) and per 1,000 events relayed by the status outbox; then counts the objects
the cycle collector finds unreachable (``gc.DEBUG_SAVEALL``) per 1,000 calls of each.

Two versions of the code side by side, same session, alternating, on one scratch database (its
schema migrated by the code this script runs with):

    .venv/bin/python scripts/sql-hot-paths.py --variant before=/tmp/old/src --variant after=src --rounds 5

(``/tmp/old/src``: e.g. ``git archive <commit> src | tar -x -C /tmp/old``). Without a variant it
measures the code it runs with. The admin URL comes from ``--url`` or CHAT4ALL_TEST_POSTGRES_URL;
a database ``chat4all_sqlbench_<random>`` is created, migrated and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import sqlalchemy as sa

from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.deliveries import SqlDeliveryStore
from chat4all.adapters.sql.migrate import upgrade
from chat4all.adapters.sql.status_outbox import SqlStatusOutbox
from chat4all.domain.models import Conversation, ConversationType
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import NewMessage, Receipt


def _asyncpg_dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(admin: str, statement: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(admin))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _create(admin: str, name: str) -> str:
    await _admin(admin, f'CREATE DATABASE "{name}"')
    url = sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.close()
    return url


async def _drop(admin: str, name: str) -> None:
    await _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _measure(url: str, *, messages: int, batch: int, garbage_calls: int) -> dict[str, float]:
    db = Database(url, pool_size=2)
    await db.start()
    store = SqlDeliveryStore(db)
    outbox = SqlStatusOutbox(db)
    now = datetime.now(UTC)
    members = ("alice", "bob", "carol")
    chats = [str(uuid.uuid4()) for _ in range(20)]
    for cid in chats:
        await SqlConversationStore(db).create_conversation(
            Conversation(
                conversation_id=cid, type=ConversationType.GROUP, name=None, members=members,
                created_by="alice", created_at=now, metadata={},
            ),
            private_key=None,
        )

    def new_batches(count: int) -> list[list[NewMessage]]:
        made = [
            NewMessage(
                message_id=str(uuid.uuid4()), conversation_id=chats[i % len(chats)], sender="alice",
                recipients=("bob", "carol"), channels=("internal",),
                payload={"type": "text", "text": f"hello {i}"}, metadata={"n": i}, created_at=now,
                targets=(("bob", "internal"), ("carol", "internal")),
                traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            for i in range(count)
        ]
        return [made[i : i + batch] for i in range(0, len(made), batch)]

    def receipt_calls(stored: list[list[NewMessage]], status: DeliveryStatus) -> list[list[Receipt]]:
        # one receipt per delivery, as sockets ack them; ``batch`` receipts per group commit
        receipts = [
            Receipt(user, "internal", [m.message_id], status)
            for b in stored for m in b for user in ("bob", "carol")
        ]
        return [receipts[i : i + batch] for i in range(0, len(receipts), batch)]

    async def persist(batches: list[list[NewMessage]]) -> int:
        for b in batches:
            await store.persist_batch(b, at=now)
        return len(batches)

    async def advance(calls: list[list[Receipt]], at: datetime) -> int:
        for c in calls:
            await store.advance_many(c, at=at)
        return len(calls)

    async def publish(_events: Any) -> None:
        return None

    async def relay_all() -> tuple[int, int]:
        """(events relayed, calls made), in passes of up to ``2 * batch`` events."""
        relayed = calls = 0
        while True:
            calls += 1
            if not (n := await outbox.relay(publish, limit=batch * 2)):
                return relayed, calls
            relayed += n

    async def relay() -> int:
        return (await relay_all())[1]

    # warm-up: pool, prepared statements, compiled caches
    warm = new_batches(batch * 5)
    await persist(warm)
    await advance(receipt_calls(warm, DeliveryStatus.DELIVERED), now + timedelta(seconds=1))
    await relay_all()

    result: dict[str, float] = {}
    timed = new_batches(messages)
    t0 = time.process_time()
    await persist(timed)
    result["persist_cpu_ms_per_1k_messages"] = (time.process_time() - t0) * 1000 / messages * 1000
    calls = receipt_calls(timed, DeliveryStatus.DELIVERED)
    t0 = time.process_time()
    await advance(calls, now + timedelta(seconds=2))
    result["advance_cpu_ms_per_1k_deliveries"] = (time.process_time() - t0) * 1000 / (messages * 2) * 1000
    t0 = time.process_time()
    relayed, _ = await relay_all()
    result["relay_cpu_ms_per_1k_events"] = (time.process_time() - t0) * 1000 / max(relayed, 1) * 1000

    # cyclic garbage: what the collector finds unreachable, kept instead of freed
    later = new_batches(garbage_calls * batch)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        reads = receipt_calls(later, DeliveryStatus.READ)[:garbage_calls]
        for name, run in (
            ("persist", lambda: persist(later)),
            ("advance", lambda: advance(reads, now + timedelta(seconds=3))),
            ("relay", relay),
        ):
            gc.collect()
            gc.garbage.clear()
            calls_made = await run()
            gc.collect()
            result[f"{name}_garbage_per_1k_calls"] = len(gc.garbage) * 1000 / calls_made
            gc.garbage.clear()
    finally:
        gc.set_debug(0)
    await db.close()
    return result


def _worker(args: argparse.Namespace) -> None:
    result = asyncio.run(_measure(args.db, messages=args.messages, batch=args.batch, garbage_calls=args.garbage_calls))
    print(json.dumps(result))


def _main(args: argparse.Namespace) -> None:
    admin = args.url or os.environ.get("CHAT4ALL_TEST_POSTGRES_URL")
    if not admin:
        sys.exit("no PostgreSQL: pass --url or set CHAT4ALL_TEST_POSTGRES_URL")
    variants = [v.split("=", 1) for v in args.variant] or [["this", ""]]
    name = f"chat4all_sqlbench_{secrets.token_hex(4)}"
    url = asyncio.run(_create(admin, name))
    samples: dict[str, list[dict[str, float]]] = {label: [] for label, _ in variants}
    try:
        for round_ in range(args.rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]
            for label, src in order:
                env = dict(os.environ)
                if src:
                    env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", "--db", url, "--messages", str(args.messages),
                     "--batch", str(args.batch), "--garbage-calls", str(args.garbage_calls)],
                    env=env, check=True, capture_output=True, text=True,
                ).stdout
                samples[label].append(json.loads(out.strip().splitlines()[-1]))
                print(f"round {round_ + 1} {label}: {samples[label][-1]}", file=sys.stderr)
    finally:
        asyncio.run(_drop(admin, name))
    print(f"batch {args.batch}, {args.messages} messages per run, {args.rounds} runs each; median (min-max)")
    for metric in samples[variants[0][0]][0]:
        cells = []
        for label, _ in variants:
            values = [s[metric] for s in samples[label]]
            cells.append(f"{label} {statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"{metric:38} " + "   ".join(cells))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an admin URL of the PostgreSQL server (postgresql+asyncpg://...)")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=SRC", help="a source tree to measure")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=4000, help="messages stored per timed run")
    parser.add_argument("--batch", type=int, default=20, help="messages per persist_batch, receipts per advance_many")
    parser.add_argument("--garbage-calls", type=int, default=200)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    (_worker if parsed.worker else _main)(parsed)
