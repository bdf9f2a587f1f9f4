"""DeliveryQueue on SQL: external deliveries waiting for a connector, in the delivery rows.

A delivery to an external channel is pending while its status is SENT and ``next_attempt_at``
is set (the router sets it when it stores the message); it is due once that time has come.
Claiming is a guarded UPDATE (plus ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two
dispatchers never take the same row; the claim moves ``next_attempt_at`` forward by a lease,
which is how a delivery held by a dispatcher that died becomes due again. Only the pending
delivery with the lowest sequence number of a (recipient, channel, conversation) is eligible, so
a later message never overtakes an earlier one, retries included.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.leases import Rows, claim_due, release_claims
from chat4all.adapters.sql.rows import MESSAGE_COLUMNS, history_rows, message_from_row
from chat4all.adapters.sql.schema import (
    connector_links,
    deliveries,
    messages,
    status_history,
)
from chat4all.adapters.sql.status_outbox import outbox_rows, write_outbox
from chat4all.domain.models import INTERNAL, Message, StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import ClaimedDelivery, ConnectorLink, DeliveryKey

d = deliveries
SENT = DeliveryStatus.SENT.value
FAILED = DeliveryStatus.FAILED.value


def _is(key: DeliveryKey) -> tuple[Any, ...]:
    return (d.c.message_id == key.message_id, d.c.username == key.username, d.c.channel == key.channel)


class SqlDeliveryQueue:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._dialect = sqlite if db.is_sqlite else postgresql

    def _keys_in(self, keys: Sequence[DeliveryKey]) -> Any:
        return self._db.keys_in(
            (d.c.message_id, d.c.username, d.c.channel), [(k.message_id, k.username, k.channel) for k in keys]
        )

    async def due_channels(self, *, now: datetime) -> set[str]:
        query = sa.select(d.c.channel).distinct().where(
            d.c.channel != INTERNAL, d.c.status == SENT, d.c.next_attempt_at <= now
        )
        async with self._db.read() as conn:
            return {r.channel for r in await conn.execute(query)}

    async def claim(
        self,
        *,
        now: datetime,
        limit: int,
        claimer: str,
        lease_s: float,
        channels: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedDelivery]:
        if limit < 1 or channels == []:
            return []
        earlier = d.alias("earlier")
        overtaking = (
            sa.select(earlier.c.message_id)
            .where(
                earlier.c.username == d.c.username,
                earlier.c.channel == d.c.channel,
                earlier.c.conversation_id == d.c.conversation_id,
                earlier.c.status == SENT,
                earlier.c.next_attempt_at.is_not(None),
                earlier.c.sequence_number < d.c.sequence_number,
            )
            .exists()
        )
        scope = d.c.channel.in_(list(channels)) if channels is not None else d.c.channel.not_in([INTERNAL, *exclude])
        due = (d.c.status == SENT, d.c.next_attempt_at <= now)
        candidates = (
            sa.select(d.c.message_id, d.c.username, d.c.channel)
            .where(*due, scope, ~overtaking)
            .order_by(d.c.next_attempt_at, d.c.conversation_id, d.c.sequence_number)
            .limit(limit)
        )

        async def with_messages(conn: AsyncConnection, claimed: Rows) -> list[ClaimedDelivery]:
            rows = await conn.execute(
                sa.select(*MESSAGE_COLUMNS).where(self._db.one_of(messages.c.message_id, {r.message_id for r in claimed}))
            )
            by_id = {m.message_id: m for m in map(message_from_row, rows)}
            return [
                ClaimedDelivery(
                    key=DeliveryKey(r.message_id, r.username, r.channel),
                    message=by_id[r.message_id],
                    attempts=r.attempts,
                    traceparent=r.traceparent,
                )
                for r in claimed
                if r.message_id in by_id
            ]

        found = await claim_due(
            self._db,
            d,
            candidates=candidates,
            chosen=lambda rows: self._keys_in([DeliveryKey(r.message_id, r.username, r.channel) for r in rows]),
            due=due,
            claimer=claimer,
            now=now,
            lease_s=lease_s,
            returning=(d.c.message_id, d.c.username, d.c.channel, d.c.attempts, d.c.traceparent),
            then=with_messages,
        )
        return sorted(found or [], key=lambda c: (c.message.conversation_id, c.message.sequence_number))

    async def release(self, *, claimer: str | None, now: datetime) -> int:
        return await release_claims(self._db, d, pending=d.c.status == SENT, claimer=claimer, now=now)

    async def sent(self, key: DeliveryKey, *, attempts: int, links: Sequence[ConnectorLink] = ()) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(d)
                .where(*_is(key))
                .values(
                    next_attempt_at=None,
                    claimed_by=None,
                    attempts=attempts,
                    # the last retry's reason no longer applies (a FAILED row keeps its reason)
                    error=sa.case((d.c.status == FAILED, d.c.error), else_=None),
                )
            )
            if links:
                insert = self._dialect.insert(connector_links).on_conflict_do_nothing(
                    index_elements=["channel", "external_id", "provider_message_id"]
                )
                await conn.execute(
                    insert,
                    [
                        {
                            "channel": link.channel,
                            "external_id": link.external_id,
                            "provider_message_id": link.provider_message_id,
                            "message_id": link.message_id,
                            "conversation_id": link.conversation_id,
                            "username": link.username,
                            "created_at": link.created_at,
                        }
                        for link in links
                    ],
                )

    async def retry(self, key: DeliveryKey, *, attempts: int, at: datetime, error: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(d)
                .where(*_is(key), d.c.status == SENT)
                .values(next_attempt_at=at, claimed_by=None, attempts=attempts, error=error)
            )

    async def finish(self, key: DeliveryKey, *, attempts: int) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(d).where(*_is(key)).values(next_attempt_at=None, claimed_by=None, attempts=attempts)
            )

    async def requeue(
        self, keys: Sequence[DeliveryKey], *, now: datetime, detail: str
    ) -> list[tuple[Message, list[StatusChange]]]:
        if not keys:
            return []
        async with self._db.write() as conn:
            failed = (
                await conn.execute(
                    sa.select(d.c.message_id, d.c.username, d.c.channel)
                    .where(self._keys_in(keys), d.c.status == FAILED)
                    .with_for_update()
                )
            ).all()
            if not failed:
                return []
            again = [DeliveryKey(r.message_id, r.username, r.channel) for r in failed]
            await conn.execute(
                sa.update(d)
                .where(self._keys_in(again), d.c.status == FAILED)
                .values(status=SENT, attempts=0, next_attempt_at=now, claimed_by=None, error=None, updated_at=now)
            )
            changes: dict[str, list[StatusChange]] = {}
            for k in again:
                changes.setdefault(k.message_id, []).append(
                    StatusChange(
                        message_id=k.message_id,
                        username=k.username,
                        channel=k.channel,
                        status=DeliveryStatus.SENT,
                        at=now,
                        detail=detail,
                    )
                )
            await conn.execute(
                sa.insert(status_history),
                history_rows(c for cs in changes.values() for c in cs),
            )
            rows = await conn.execute(sa.select(*MESSAGE_COLUMNS).where(self._db.one_of(messages.c.message_id, changes)))
            result = [(m, changes[m.message_id]) for m in map(message_from_row, rows)]
            await write_outbox(conn, outbox_rows((m.conversation_id, m.sender, c) for m, cs in result for c in cs))
            return result
