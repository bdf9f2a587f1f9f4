"""The transactional outbox of StatusEvents.

Every writer of a delivery's status (``persist_batch``, ``advance_many``, ``requeue``) inserts the
StatusEvents of its changes into ``status_outbox`` in the same transaction, with one multi-row
INSERT per batch. ``SqlStatusOutbox.relay`` appends the oldest rows to the log and then deletes
them: a crash between the commit and the append loses nothing (the rows are still there), a
crash between the append and the delete appends them again (at least once; webhook callbacks are
keyed by event, so a repeat is a no-op).

Order: rows are relayed in id order, and one relay runs at a time (an advisory lock held by the
relay's transaction on PostgreSQL; one process holds an SQLite file). A delivery's later status
is written by a transaction that waited for the earlier one's row lock, so it has the larger id:
one delivery's events reach the log in the order they happened.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from chat4all import failpoints
from chat4all.adapters.sql.database import Database, in_param
from chat4all.adapters.sql.schema import status_outbox
from chat4all.domain.events import StatusEvent
from chat4all.domain.models import StatusChange

# pg_advisory_xact_lock key of the relay: "c4a-outbox" as a number
_RELAY_LOCK = 0x6334_612D_6F75_7462

# one relay pass at a time per database in this process (SQLite has no advisory lock)
_PASSES: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()

Publish = Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]]

# built once, executed with parameters (see adapters/sql/messages.py)
_INSERT = sa.insert(status_outbox)
_TRY_RELAY_LOCK = sa.select(sa.func.pg_try_advisory_xact_lock(_RELAY_LOCK))
_OLDEST: sa.Select[Any] = (
    sa.select(status_outbox.c.id, status_outbox.c.key, status_outbox.c.value)
    .order_by(status_outbox.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)


@functools.cache
def _delete(*, postgres: bool) -> sa.Delete:
    """Deletes the rows of :ids."""
    return sa.delete(status_outbox).where(in_param(status_outbox.c.id, "ids", postgres=postgres))


def outbox_rows(
    changes: Iterable[tuple[str, str, StatusChange]], traceparents: Mapping[tuple[str, str, str], str | None] | None = None
) -> list[dict[str, Any]]:
    """Rows for (conversation_id, sender, change) triples, in the order given; each event carries
    the trace context stored with its delivery (message_id, username, channel), so the webhook
    hop joins the message's trace."""
    traceparents = traceparents or {}
    rows = []
    for conversation_id, sender, change in changes:
        value = StatusEvent.encode_change(
            traceparent=traceparents.get((change.message_id, change.username, change.channel)),
            message_id=change.message_id,
            conversation_id=conversation_id,
            sender=sender,
            username=change.username,
            channel=change.channel,
            status=change.status,
            at=change.at,
            detail=change.detail,
        )
        rows.append({"key": change.message_id, "value": value})
    return rows


async def write_outbox(conn: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(_INSERT, rows)


class SqlStatusOutbox:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = _PASSES.setdefault(db, asyncio.Lock())

    async def relay(self, publish: Publish, *, limit: int = 1000) -> int:
        """Appends up to ``limit`` of the oldest events with ``publish`` and deletes them; how many."""
        async with self._lock:
            if self._db.is_sqlite:
                return await self._relay_sqlite(publish, limit)
            return await self._relay_postgres(publish, limit)

    async def _relay_postgres(self, publish: Publish, limit: int) -> int:
        async with self._db.write() as conn:
            # another process's relay holds it: that one is publishing, in order
            if not (await conn.execute(_TRY_RELAY_LOCK)).scalar():
                return 0
            rows = (await conn.execute(_OLDEST, {"limit": limit})).all()
            if not rows:
                return 0
            await self._publish(publish, rows)
            await conn.execute(_delete(postgres=True), {"ids": [r.id for r in rows]})
        return len(rows)

    async def _relay_sqlite(self, publish: Publish, limit: int) -> int:
        # the write lock is not held while publishing: the embedded log appends to this database
        async with self._db.read() as conn:
            rows = (await conn.execute(_OLDEST, {"limit": limit})).all()
        if not rows:
            return 0
        await self._publish(publish, rows)
        async with self._db.write() as conn:
            await conn.execute(_delete(postgres=False), {"ids": [r.id for r in rows]})
        return len(rows)

    @staticmethod
    async def _publish(publish: Publish, rows: Sequence[sa.Row[Any]]) -> None:
        failpoints.hit("outbox.before_publish")  # crash tests: committed, not yet on the log
        await publish([(r.key, r.value) for r in rows])
        failpoints.hit("outbox.after_publish")

    async def pending(self) -> int:
        async with self._db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(status_outbox))).scalar_one())
