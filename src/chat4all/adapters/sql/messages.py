"""MessageStore on SQL: messages, deliveries (one per recipient × channel), status history."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from chat4all.adapters.sql.database import Database, in_param, key_params, key_table_param, keys_in_param
from chat4all.adapters.sql.files import record_shares
from chat4all.adapters.sql.read_cursors import advance_read_cursors, message_kind
from chat4all.adapters.sql.rows import MESSAGE_COLUMNS as _MESSAGE_COLUMNS
from chat4all.adapters.sql.rows import history_rows
from chat4all.adapters.sql.rows import message_from_row as _message
from chat4all.adapters.sql.schema import conversations, deliveries, messages, status_history
from chat4all.adapters.sql.status_outbox import outbox_rows, write_outbox
from chat4all.domain.models import INTERNAL, Delivery, Message, StatusChange
from chat4all.domain.status import DeliveryStatus, steps_to
from chat4all.ports import NewMessage, PersistResult, Receipt

_DELIVERY_KEY = (deliveries.c.message_id, deliveries.c.username, deliveries.c.channel)

# (message_id, username, channel) keys per locking SELECT: 3 parameters each, well under the
# drivers' limits
_KEYS_PER_STATEMENT = 2000

# The statements of the router's persist and of the receipts, built once and executed with
# parameters: building them per call (and then their cache keys) was a tenth of the router's CPU
# and most of the cyclic garbage an API process left for the collector.
_BUMP_CONVERSATIONS = (
    sa.update(conversations)
    .where(conversations.c.conversation_id == sa.bindparam("cid"))
    .values(last_seq=sa.bindparam("seq"), last_activity_at=sa.bindparam("now"), changed_at=sa.bindparam("now"))
)
_INSERT_MESSAGES = sa.insert(messages)
_INSERT_DELIVERIES = sa.insert(deliveries)
_INSERT_HISTORY = sa.insert(status_history)


@dataclass(frozen=True, slots=True)
class _Statements:
    """Those whose form depends on the dialect: lists bound as arrays on PostgreSQL, as expanding
    IN lists on SQLite."""

    postgres: bool
    # :cids, the conversations to lock, in order
    lock_conversations: sa.Select[Any]
    # :ids, the messages to read
    messages_in: sa.Select[Any]
    # the delivery keys to lock, in order (``key_params("key", ...)``)
    lock_deliveries: sa.Select[Any]
    # PostgreSQL: one execution with arrays :m :u :c :s :e; SQLite: one row each; and :now
    set_statuses: sa.Update


@functools.cache
def _statements(*, postgres: bool) -> _Statements:
    d = deliveries
    if postgres:
        # one UPDATE ... FROM unnest(...) for the batch, not one execution per row
        new = key_table_param([d.c.message_id, d.c.username, d.c.channel, d.c.status, d.c.error], ["m", "u", "c", "s", "e"])
        set_statuses = (
            sa.update(d)
            .where(d.c.message_id == new.c.k0, d.c.username == new.c.k1, d.c.channel == new.c.k2)
            .values(status=new.c.k3, updated_at=sa.bindparam("now"), error=new.c.k4)
        )
    else:
        set_statuses = (
            sa.update(d)
            .where(d.c.message_id == sa.bindparam("m"), d.c.username == sa.bindparam("u"), d.c.channel == sa.bindparam("c"))
            .values(status=sa.bindparam("s"), updated_at=sa.bindparam("now"), error=sa.bindparam("e"))
        )
    return _Statements(
        postgres=postgres,
        lock_conversations=sa.select(conversations.c.conversation_id, conversations.c.last_seq)
        .where(in_param(conversations.c.conversation_id, "cids", postgres=postgres))
        .order_by(conversations.c.conversation_id)
        .with_for_update(),
        messages_in=sa.select(*_MESSAGE_COLUMNS).where(in_param(messages.c.message_id, "ids", postgres=postgres)),
        lock_deliveries=sa.select(d.c.message_id, d.c.username, d.c.channel, d.c.status, d.c.traceparent)
        .where(keys_in_param(_DELIVERY_KEY, "key", postgres=postgres))
        .order_by(d.c.message_id, d.c.username, d.c.channel)
        .with_for_update(),
        set_statuses=set_statuses,
    )


class SqlMessageStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = _statements(postgres=not db.is_sqlite)

    async def persist_batch(self, batch: Sequence[NewMessage], *, at: datetime) -> PersistResult:
        unique: dict[str, NewMessage] = {}
        for m in batch:
            unique.setdefault(m.message_id, m)
        if not unique:
            return PersistResult(new=[], known=[])
        conversation_ids = sorted({m.conversation_id for m in unique.values()})
        async with self._db.write() as conn:
            # Lock the conversations first (in a fixed order, so two routers that overlap during
            # a rebalance queue up instead of deadlocking); only then is "already stored" final.
            last_seq = {
                r.conversation_id: r.last_seq
                for r in await conn.execute(self._sql.lock_conversations, {"cids": conversation_ids})
            }
            known_rows = (await conn.execute(self._sql.messages_in, {"ids": list(unique)})).all()
            known = [_message(r) for r in known_rows]
            known_ids = {k.message_id for k in known}
            fresh = [m for m in unique.values() if m.message_id not in known_ids and m.conversation_id in last_seq]
            stored = await self._insert(conn, fresh, last_seq, at)
        return PersistResult(new=stored, known=known)

    async def _insert(
        self, conn: Any, fresh: list[NewMessage], last_seq: dict[str, int], at: datetime
    ) -> list[Message]:
        stored: list[Message] = []
        message_rows: list[dict[str, Any]] = []
        delivery_rows: list[dict[str, Any]] = []
        history_rows: list[dict[str, Any]] = []
        next_seq = dict(last_seq)
        for m in fresh:
            next_seq[m.conversation_id] += 1
            seq = next_seq[m.conversation_id]
            message_rows.append(
                {
                    "message_id": m.message_id,
                    "conversation_id": m.conversation_id,
                    "sequence_number": seq,
                    "sender": m.sender,
                    "recipients": list(m.recipients),
                    "channels": list(m.channels),
                    "payload": m.payload,
                    "metadata": m.metadata,
                    "created_at": m.created_at,
                    "persisted_at": at,
                    "kind": message_kind(m.payload),
                }
            )
            for username, channel in m.targets:
                delivery_rows.append(
                    {
                        "message_id": m.message_id,
                        "username": username,
                        "channel": channel,
                        "conversation_id": m.conversation_id,
                        "sequence_number": seq,
                        "status": DeliveryStatus.SENT.value,
                        "updated_at": at,
                        # an external channel's delivery is pending for the connector dispatcher
                        "next_attempt_at": None if channel == INTERNAL else at,
                        "traceparent": m.traceparent,
                    }
                )
                history_rows.append(
                    {
                        "message_id": m.message_id,
                        "username": username,
                        "channel": channel,
                        "status": DeliveryStatus.SENT.value,
                        "at": at,
                    }
                )
            stored.append(
                Message(
                    message_id=m.message_id,
                    conversation_id=m.conversation_id,
                    sequence_number=seq,
                    sender=m.sender,
                    recipients=tuple(m.recipients),
                    channels=tuple(m.channels),
                    payload=m.payload,
                    metadata=m.metadata,
                    created_at=m.created_at,
                    kind=message_kind(m.payload),
                )
            )
        bumped = [{"cid": c, "seq": seq, "now": at} for c, seq in next_seq.items() if seq != last_seq[c]]
        if bumped:
            await conn.execute(_BUMP_CONVERSATIONS, bumped)
        if message_rows:
            await conn.execute(_INSERT_MESSAGES, message_rows)
            await record_shares(conn, message_rows, at=at)  # members may now download the files sent
        if delivery_rows:
            await conn.execute(_INSERT_DELIVERIES, delivery_rows)
            # no SENT events in the status outbox: the router appends them (DeliveryService.log_created)
            await conn.execute(_INSERT_HISTORY, history_rows)
        return stored

    async def get_message(self, message_id: str) -> Message | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(*_MESSAGE_COLUMNS).where(messages.c.message_id == message_id))).first()
        return _message(row) if row else None

    async def get_messages(self, message_ids: Sequence[str]) -> dict[str, Message]:
        if not message_ids:
            return {}
        async with self._db.read() as conn:
            rows = await conn.execute(sa.select(*_MESSAGE_COLUMNS).where(messages.c.message_id.in_(list(message_ids))))
        return {m.message_id: m for m in map(_message, rows)}

    async def list_messages(self, conversation_id: str, *, viewer: str, since: int, limit: int) -> list[Message]:
        addressed_to_viewer = (
            sa.select(deliveries.c.message_id)
            .where(deliveries.c.message_id == messages.c.message_id, deliveries.c.username == viewer)
            .exists()
        )
        query = (
            sa.select(*_MESSAGE_COLUMNS)
            .where(
                messages.c.conversation_id == conversation_id,
                messages.c.sequence_number > since,
                sa.or_(messages.c.sender == viewer, addressed_to_viewer),
            )
            .order_by(messages.c.sequence_number)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_message(r) for r in await conn.execute(query)]

    async def deliveries(self, message_id: str) -> list[Delivery]:
        d = deliveries
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(d.c.message_id, d.c.username, d.c.channel, d.c.status, d.c.updated_at, d.c.error)
                .where(d.c.message_id == message_id)
                .order_by(d.c.username, d.c.channel)
            )
            return [Delivery(**r._mapping) for r in rows]

    async def history(self, message_id: str) -> list[StatusChange]:
        h = status_history
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(h.c.message_id, h.c.username, h.c.channel, h.c.status, h.c.at, h.c.detail)
                .where(h.c.message_id == message_id)
                .order_by(h.c.id)
            )
            return [StatusChange(**r._mapping) for r in rows]

    async def pending_for(
        self, username: str, *, channel: str, after: tuple[str, int] | None, limit: int
    ) -> list[Message]:
        d = deliveries
        condition = sa.and_(
            d.c.username == username, d.c.channel == channel, d.c.status == DeliveryStatus.SENT.value
        )
        if after is not None:
            conversation_id, seq = after
            condition = sa.and_(
                condition,
                sa.or_(
                    d.c.conversation_id > conversation_id,
                    sa.and_(d.c.conversation_id == conversation_id, d.c.sequence_number > seq),
                ),
            )
        query = (
            sa.select(*_MESSAGE_COLUMNS)
            .select_from(d.join(messages, messages.c.message_id == d.c.message_id))
            .where(condition)
            .order_by(d.c.conversation_id, d.c.sequence_number)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_message(r) for r in await conn.execute(query)]

    async def advance(
        self,
        *,
        username: str,
        channel: str,
        message_ids: Sequence[str],
        status: DeliveryStatus,
        at: datetime,
        detail: str | None = None,
    ) -> list[tuple[Message, list[StatusChange]]]:
        return await self.advance_many([Receipt(username, channel, message_ids, status, detail)], at=at)

    async def advance_many(
        self, receipts: Sequence[Receipt], *, at: datetime
    ) -> list[tuple[Message, list[StatusChange]]]:
        keys = sorted({(m, r.username, r.channel) for r in receipts for m in r.message_ids})
        if not keys:
            return []
        async with self._db.write() as conn:
            # lock the rows in one fixed order, so overlapping batches queue up instead of deadlocking
            current: dict[tuple[str, str, str], DeliveryStatus] = {}
            traces: dict[tuple[str, str, str], str | None] = {}
            for start in range(0, len(keys), _KEYS_PER_STATEMENT):
                chunk = key_params("key", keys[start : start + _KEYS_PER_STATEMENT], postgres=self._sql.postgres)
                rows = (await conn.execute(self._sql.lock_deliveries, chunk)).all()
                current.update({(r.message_id, r.username, r.channel): DeliveryStatus(r.status) for r in rows})
                traces.update({(r.message_id, r.username, r.channel): r.traceparent for r in rows})
            changes: dict[str, list[StatusChange]] = {}
            final: dict[tuple[str, str, str], tuple[DeliveryStatus, str | None]] = {}
            for r in receipts:  # in arrival order: each receipt sees what the ones before it did
                for message_id in dict.fromkeys(r.message_ids):
                    key = (message_id, r.username, r.channel)
                    was = current.get(key)
                    steps = steps_to(was, r.status) if was is not None else []
                    if not steps:
                        continue
                    current[key] = r.status
                    final[key] = (r.status, r.detail)
                    changes.setdefault(message_id, []).extend(
                        StatusChange(
                            message_id=message_id, username=r.username, channel=r.channel, status=s, at=at, detail=r.detail
                        )
                        for s in steps
                    )
            if not changes:
                return []
            await self._set_statuses(conn, final, at)
            await conn.execute(_INSERT_HISTORY, history_rows(c for cs in changes.values() for c in cs))
            moved = await conn.execute(self._sql.messages_in, {"ids": list(changes)})
            result = [(m, changes[m.message_id]) for m in map(_message, moved)]
            await advance_read_cursors(conn, result, at=at)  # a READ moves the reader's cursor (API v2)
            await write_outbox(conn, outbox_rows(((m.conversation_id, m.sender, c) for m, cs in result for c in cs), traces))
            return result

    async def _set_statuses(
        self, conn: Any, final: dict[tuple[str, str, str], tuple[DeliveryStatus, str | None]], at: datetime
    ) -> None:
        if self._sql.postgres:
            m, u, c, s, e = zip(*((m, u, c, s.value, e) for (m, u, c), (s, e) in final.items()), strict=True)
            params: Any = {"m": list(m), "u": list(u), "c": list(c), "s": list(s), "e": list(e), "now": at}
        else:
            params = [{"m": m, "u": u, "c": c, "s": s.value, "e": e, "now": at} for (m, u, c), (s, e) in final.items()]
        await conn.execute(self._sql.set_statuses, params)
