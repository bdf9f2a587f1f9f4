"""StatusEvents across a crash, in a real process (embedded profile): the process is killed
(SIGKILL, at a failpoint) after statuses are committed and before their StatusEvents reach the
log; after a restart the events are on the log all the same. Receipts go through the status
outbox; a delivery's creation (SENT) is appended by the router, whose uncommitted input is its
outbox: the restarted router consumes the batch again and appends SENT."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from tests.e2e.processes import Process, embedded_process

pytestmark = pytest.mark.e2e


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Process]:
    with embedded_process(tmp_path) as p:
        yield p


def _query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _status_events(db: Path) -> list[dict]:
    rows = _query(db, "SELECT value FROM event_log WHERE topic = 'status.events' ORDER BY \"offset\"")
    return [orjson.loads(v) for (v,) in rows]


async def _died(process: Process) -> None:
    async def died() -> bool:
        return process.proc is not None and process.proc.poll() is not None

    await wait_until(died, timeout=30, what="the process to die at the failpoint")
    assert process.proc is not None and process.proc.returncode == -signal.SIGKILL


async def _group_message(process: Process, text: str) -> tuple[str, str]:
    async with Chat4AllClient(process.base_url) as alice:
        await alice.register("alice", PASSWORD)
        await alice.register("bob", PASSWORD)
        await alice.register("carol", PASSWORD)
        await alice.login("alice", PASSWORD)
        group = (await alice.create_conversation("group", ["bob", "carol"]))["conversation_id"]
        sent = await alice.send_text(group, text)
    return group, sent["message_id"]


async def test_sent_events_of_a_batch_stored_before_a_crash_reach_the_log_after_the_restart(process: Process) -> None:
    process.start(CHAT4ALL_FAILPOINTS="routing.before_sent")
    await process.ready()
    group, message_id = await _group_message(process, "survive the crash")
    await _died(process)
    db = process.data_dir / "chat4all.db"
    # the crash came between the commit and the append: the statuses are stored, the log lacks them
    assert _query(db, f"SELECT username, status FROM deliveries WHERE message_id = '{message_id}' ORDER BY username") == [
        ("bob", "SENT"),
        ("carol", "SENT"),
    ]
    assert [e for e in _status_events(db) if e["message_id"] == message_id] == []

    process.start()
    await process.ready()

    async def appended() -> list[dict]:
        return [e for e in _status_events(db) if e["message_id"] == message_id]

    events = await wait_until(appended, timeout=30, what="SENT on the log after the restart")
    assert sorted((e["username"], e["status"]) for e in events) == [("bob", "SENT"), ("carol", "SENT")]
    assert all(e["sender"] == "alice" and e["conversation_id"] == group for e in events)
    # stored once: the replayed batch found the message known
    assert _query(db, f"SELECT count(*) FROM messages WHERE message_id = '{message_id}'") == [(1,)]


async def test_receipts_committed_before_a_crash_reach_the_log_after_the_restart(process: Process) -> None:
    process.start(CHAT4ALL_FAILPOINTS="outbox.before_publish")
    await process.ready()
    group, message_id = await _group_message(process, "survive the crash")
    db = process.data_dir / "chat4all.db"

    async def routed() -> bool:
        return _query(db, f"SELECT count(*) FROM deliveries WHERE message_id = '{message_id}'") == [(2,)]

    await wait_until(routed, timeout=30, what="the message to be routed")
    async with Chat4AllClient(process.base_url) as bob:
        await bob.login("bob", PASSWORD)
        # the relay pass this receipt wakes kills the process: the answer may not arrive
        with contextlib.suppress(httpx.HTTPError):
            await bob.ack([message_id], "delivered")
    await _died(process)
    assert _query(db, f"SELECT username, status FROM deliveries WHERE message_id = '{message_id}' ORDER BY username") == [
        ("bob", "DELIVERED"),
        ("carol", "SENT"),
    ]
    assert [e["status"] for e in _status_events(db) if e["message_id"] == message_id] == ["SENT", "SENT"]
    assert _query(db, "SELECT count(*) FROM status_outbox") == [(1,)]

    process.start()
    await process.ready()

    async def relayed() -> list[dict]:
        return [e for e in _status_events(db) if e["message_id"] == message_id and e["status"] == "DELIVERED"]

    events = await wait_until(relayed, timeout=30, what="the outbox to be relayed after the restart")
    assert [(e["username"], e["sender"], e["conversation_id"]) for e in events] == [("bob", "alice", group)]

    async def emptied() -> bool:
        return _query(db, "SELECT count(*) FROM status_outbox") == [(0,)]

    await wait_until(emptied, timeout=10, what="the relayed rows to be deleted")
