"""EventLog in the database: the durable log of the embedded profile.

Appends are group-committed (``batching.GroupCommit``): concurrent ``append`` calls that arrive while a write is in flight
go together in the next transaction, and each caller returns only once its record is
committed, so a 202 means the message survives a crash of the process.

Offsets are the table's autoincrement key, so they grow in commit order (SQLite has one writer;
on PostgreSQL the append takes a transaction-scoped advisory lock per topic). Records are
partitioned by a hash of their key, and consumer groups keep one committed offset per partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import consumer_offsets, event_log
from chat4all.batching import GroupCommit
from chat4all.domain.errors import Chat4AllError, Unavailable
from chat4all.domain.ids import utcnow
from chat4all.ports import LAG_CAP, LogRecord

# a consumer's poll, built once: the next records of a topic from its scan position
_READ = (
    sa.select(event_log.c.offset, event_log.c.partition, event_log.c.key, event_log.c.value)
    .where(event_log.c.topic == sa.bindparam("topic"), event_log.c.offset >= sa.bindparam("cursor"))
    .order_by(event_log.c.offset)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)


def partition_for(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


class SqlEventLog:
    def __init__(self, db: Database, *, partitions: int, poll_interval_s: float = 0.2) -> None:
        self._db = db
        self.partitions = partitions
        self.poll_interval_s = poll_interval_s
        self._commit: GroupCommit[tuple[str, Sequence[tuple[str, bytes]]], None] = GroupCommit(self._flush)
        # per topic: an append wakes the consumers of its topic only (a message's append used to
        # wake every consumer of every topic, each then asking the database for nothing)
        self._appended: dict[str, asyncio.Event] = {}
        self._appends: dict[str, int] = {}  # per topic: flushes so far (a consumer's read is stale if it moved)
        self._started = False
        self._closing = False

    @property
    def running(self) -> bool:
        return self._started and not self._closing

    async def start(self) -> None:
        self._closing = False
        self._started = True

    async def close(self) -> None:
        """Writes what was handed over, then stops; later appends are refused."""
        if not self._started:
            return
        self._closing = True
        await self._commit.wait_idle()
        self._started = False

    async def ping(self) -> None:
        if not self.running:
            raise Unavailable("the event log is not running")

    async def append(self, topic: str, key: str, value: bytes) -> None:
        await self.append_many(topic, ((key, value),))

    async def append_many(self, topic: str, records: Sequence[tuple[str, bytes]]) -> None:
        if not records:
            return
        if not self.running:
            raise Unavailable("the event log is not running")
        await self._commit.submit((topic, records))

    async def _flush(self, batch: Sequence[tuple[str, Sequence[tuple[str, bytes]]]]) -> list[None]:
        try:
            await self._write(batch)
        except Chat4AllError:
            raise
        except Exception as exc:  # every waiting caller learns that its append failed
            raise Unavailable("the event log could not be written") from exc
        for topic in {topic for topic, _ in batch}:
            self._appends[topic] = self._appends.get(topic, 0) + 1
            appended = self._appended.pop(topic, None)
            if appended is not None:
                appended.set()
        return [None] * len(batch)

    async def _write(self, batch: Sequence[tuple[str, Sequence[tuple[str, bytes]]]]) -> None:
        now = utcnow()
        rows: list[dict[str, Any]] = [
            {"topic": topic, "partition": partition_for(key, self.partitions), "key": key, "value": value, "appended_at": now}
            for topic, records in batch
            for key, value in records
        ]
        async with self._db.write() as conn:
            if not self._db.is_sqlite:
                for topic in sorted({r["topic"] for r in rows}):
                    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(zlib.crc32(topic.encode()))))
            await conn.execute(sa.insert(event_log), rows)

    def appends(self, topic: str) -> int:
        return self._appends.get(topic, 0)

    async def wait_for_appends(self, topic: str, timeout_s: float, *, since: int) -> None:
        """Returns when this process has appended to ``topic`` since ``appends(topic)`` was
        ``since`` (at once if it already has), or after ``timeout_s`` (other processes'
        appends are seen by polling)."""
        if self.appends(topic) != since:
            return
        appended = self._appended.get(topic)
        if appended is None:
            appended = self._appended[topic] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(appended.wait(), timeout_s)

    def consumer(self, topic: str, group: str) -> SqlLogConsumer:
        return SqlLogConsumer(self, self._db, topic=topic, group=group)


class SqlLogConsumer:
    """Reads every partition of a topic for one consumer group."""

    def __init__(self, log: SqlEventLog, db: Database, *, topic: str, group: str) -> None:
        self._log = log
        self._db = db
        self.topic = topic
        self.group = group
        self._next: dict[int, int] = {}  # partition → next offset to hand out
        # offsets are global, so one scan position serves every partition
        self._cursor = 0

    async def start(self) -> None:
        t, e = consumer_offsets, event_log
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(t.c.partition, t.c.next_offset).where(t.c.group_id == self.group, t.c.topic == self.topic)
            )
            committed = {r.partition: r.next_offset for r in rows}
            self._next = {p: committed.get(p, 0) for p in range(self._log.partitions)}
            # scan from the oldest record still pending in any partition (one indexed look-up each)
            pending = [
                await conn.scalar(
                    sa.select(sa.func.min(e.c.offset)).where(
                        e.c.topic == self.topic, e.c.partition == p, e.c.offset >= next_offset
                    )
                )
                for p, next_offset in self._next.items()
            ]
        found = [o for o in pending if o is not None]
        self._cursor = min(found) if found else max(self._next.values(), default=0)

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            cursor = self._cursor
            appends = self._log.appends(self.topic)
            records = await self._read(max_records)
            if records:
                return records
            if self._cursor != cursor:
                continue  # skipped records of partitions already past them; keep scanning
            remaining = deadline - loop.time()
            if remaining <= 0:
                return records
            await self._log.wait_for_appends(self.topic, min(remaining, self._log.poll_interval_s), since=appends)

    async def _read(self, max_records: int) -> list[LogRecord]:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(_READ, {"topic": self.topic, "cursor": self._cursor, "limit": max_records})
            ).all()
        if not rows:
            return []
        self._cursor = rows[-1][0] + 1
        topic, next_offsets = self.topic, self._next
        records = []
        for offset, partition, key, value in rows:
            if offset >= next_offsets.get(partition, 0):
                records.append(LogRecord(topic, partition, offset, key, bytes(value)))
                next_offsets[partition] = offset + 1
        return records

    async def commit(self, records: Sequence[LogRecord]) -> None:
        upto: dict[int, int] = {}
        for r in records:
            upto[r.partition] = max(upto.get(r.partition, 0), r.offset + 1)
        if not upto:
            return
        t = consumer_offsets
        insert = (sqlite if self._db.is_sqlite else postgresql).insert(t)
        # one statement for every partition of the batch; an offset never moves backwards
        upsert = insert.on_conflict_do_update(
            index_elements=[t.c.group_id, t.c.topic, t.c.partition],
            set_={
                "next_offset": sa.case(
                    (insert.excluded.next_offset > t.c.next_offset, insert.excluded.next_offset), else_=t.c.next_offset
                )
            },
        )
        rows = [
            {"group_id": self.group, "topic": self.topic, "partition": p, "next_offset": o} for p, o in upto.items()
        ]
        async with self._db.write() as conn:
            await conn.execute(upsert, rows)

    async def seek(self, partition: int, offset: int) -> None:
        self._next[partition] = offset
        self._cursor = min(self._cursor, offset)

    async def lag(self) -> int | None:
        e = event_log
        backlog = (
            sa.select(e.c.offset)
            .where(e.c.topic == self.topic, e.c.offset >= self._cursor)
            .order_by(e.c.offset)
            .limit(LAG_CAP)
            .subquery()
        )
        async with self._db.read() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(backlog)) or 0)

    async def stop(self) -> None:
        return None
