"""WebhookOutbox on SQL: callbacks to deliver, their attempts, each webhook's failure streak.

Claiming is a guarded UPDATE (``state = 'pending' AND next_attempt_at <= now``, plus
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several webhook workers never take the same row;
the claim pushes ``next_attempt_at`` forward by a lease, which is how a row held by a worker
that died becomes due again. Only the oldest pending row of a (webhook, subject) is eligible,
so callbacks about one message go out one after the other, in the order they were enqueued.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.leases import Rows, claim_due, release_claims
from chat4all.adapters.sql.schema import (
    webhook_attempts,
    webhook_health,
    webhook_outbox,
)
from chat4all.domain.webhooks import Attempt, CallbackDelivery, DeliveryState
from chat4all.ports import Callback, ClaimedCallback

PENDING = DeliveryState.PENDING.value
_KEYS_PER_QUERY = 500

o = webhook_outbox
_CLAIMED_COLUMNS = (
    o.c.id, o.c.webhook_id, o.c.owner, o.c.event_id, o.c.type, o.c.subject_id, o.c.body, o.c.attempts, o.c.traceparent,
)


class SqlWebhookOutbox:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._dialect = sqlite if db.is_sqlite else postgresql

    async def enqueue(self, callbacks: Sequence[Callback], *, now: datetime) -> int:
        if not callbacks:
            return 0
        rows = [
            {
                "webhook_id": c.webhook_id,
                "owner": c.owner,
                "event_id": c.event_id,
                "type": c.type,
                "subject_id": c.subject_id,
                "body": c.body,
                "state": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "traceparent": c.traceparent,
            }
            for c in callbacks
        ]
        statement = (
            self._dialect.insert(o).on_conflict_do_nothing(index_elements=["webhook_id", "event_id"]).returning(o.c.id)
        )
        async with self._db.write() as conn:
            inserted = 0
            for row in rows:  # one by one: ids follow the given order on every backend
                inserted += len((await conn.execute(statement, row)).all())
        return inserted

    async def known(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        unique = sorted(set(keys))
        found: set[tuple[str, str]] = set()
        async with self._db.read() as conn:
            for start in range(0, len(unique), _KEYS_PER_QUERY):
                chunk = unique[start : start + _KEYS_PER_QUERY]
                rows = await conn.execute(
                    sa.select(o.c.webhook_id, o.c.event_id).where(sa.tuple_(o.c.webhook_id, o.c.event_id).in_(chunk))
                )
                found.update((r.webhook_id, r.event_id) for r in rows)
        return found

    async def claim(self, *, now: datetime, limit: int, claimer: str, lease_s: float) -> list[ClaimedCallback]:
        earlier = o.alias("earlier")
        overtaking = (
            sa.select(earlier.c.id)
            .where(
                earlier.c.webhook_id == o.c.webhook_id,
                earlier.c.subject_id == o.c.subject_id,
                earlier.c.state == PENDING,
                earlier.c.id < o.c.id,
            )
            .exists()
        )
        due = (o.c.state == PENDING, o.c.next_attempt_at <= now)
        candidates = sa.select(o.c.id).where(*due, ~overtaking).order_by(o.c.next_attempt_at, o.c.id).limit(limit)

        async def callbacks(conn: AsyncConnection, claimed: Rows) -> list[ClaimedCallback]:
            return [
                ClaimedCallback(**{**r._mapping, "body": bytes(r.body)}) for r in sorted(claimed, key=lambda r: r.id)
            ]

        found = await claim_due(
            self._db,
            o,
            candidates=candidates,
            chosen=lambda rows: o.c.id.in_([r.id for r in rows]),
            due=due,
            claimer=claimer,
            now=now,
            lease_s=lease_s,
            returning=_CLAIMED_COLUMNS,
            then=callbacks,
        )
        return found or []

    async def release(self, *, claimer: str | None, now: datetime) -> int:
        return await release_claims(self._db, o, pending=o.c.state == PENDING, claimer=claimer, now=now)

    async def record(
        self, callback: ClaimedCallback, attempt: Attempt, *, retry_at: datetime | None, now: datetime
    ) -> int:
        async with self._db.write() as conn:
            state = await conn.scalar(sa.select(o.c.state).where(o.c.id == callback.id))
            if state is None:  # the webhook was deleted meanwhile
                return 0
            await conn.execute(
                sa.insert(webhook_attempts).values(
                    outbox_id=callback.id,
                    webhook_id=callback.webhook_id,
                    attempt=attempt.attempt,
                    at=attempt.at,
                    status_code=attempt.status_code,
                    latency_ms=attempt.latency_ms,
                    error=attempt.error,
                )
            )
            if state != PENDING:  # cancelled while the attempt was in flight
                return 0
            values: dict[str, Any] = {"attempts": attempt.attempt, "claimed_by": None}
            if attempt.ok:
                values |= {"state": DeliveryState.DELIVERED.value, "finished_at": now, "last_error": None}
            elif retry_at is not None:
                values |= {"next_attempt_at": retry_at, "last_error": attempt.error or f"HTTP {attempt.status_code}"}
            else:
                values |= {
                    "state": DeliveryState.FAILED.value,
                    "finished_at": now,
                    "last_error": attempt.error or f"HTTP {attempt.status_code}",
                }
            await conn.execute(sa.update(o).where(o.c.id == callback.id).values(**values))
            if retry_at is not None and not attempt.ok:  # not settled yet: the streak stays as it is
                h = webhook_health
                current = await conn.scalar(sa.select(h.c.consecutive_failures).where(h.c.webhook_id == callback.webhook_id))
                return current or 0
            return await self._settle_streak(conn, callback.webhook_id, failed=not attempt.ok, now=now)

    async def _settle_streak(self, conn: Any, webhook_id: str, *, failed: bool, now: datetime) -> int:
        """A callback settled: a failure grows the webhook's streak, a success resets it."""
        h = webhook_health
        insert = self._dialect.insert(h).values(webhook_id=webhook_id, consecutive_failures=int(failed), updated_at=now)
        streak = h.c.consecutive_failures + 1 if failed else 0
        upsert = insert.on_conflict_do_update(
            index_elements=["webhook_id"], set_={"consecutive_failures": streak, "updated_at": now}
        ).returning(h.c.consecutive_failures)
        return (await conn.execute(upsert)).scalar_one()

    async def cancel(self, webhook_id: str, *, reason: str, now: datetime) -> int:
        async with self._db.write() as conn:
            result = await conn.execute(
                sa.update(o)
                .where(o.c.webhook_id == webhook_id, o.c.state == PENDING)
                .values(state=DeliveryState.CANCELLED.value, last_error=reason, finished_at=now, claimed_by=None)
            )
        return result.rowcount

    async def forget(self, webhook_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(sa.delete(webhook_attempts).where(webhook_attempts.c.webhook_id == webhook_id))
            await conn.execute(sa.delete(o).where(o.c.webhook_id == webhook_id))
            await conn.execute(sa.delete(webhook_health).where(webhook_health.c.webhook_id == webhook_id))

    async def deliveries(self, webhook_id: str, *, limit: int, before: int | None) -> list[CallbackDelivery]:
        a = webhook_attempts
        query = sa.select(o).where(o.c.webhook_id == webhook_id)
        if before is not None:
            query = query.where(o.c.id < before)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(o.c.id.desc()).limit(limit))).all()
            attempts: dict[int, list[Attempt]] = defaultdict(list)
            if rows:
                for r in await conn.execute(sa.select(a).where(a.c.outbox_id.in_([r.id for r in rows])).order_by(a.c.id)):
                    attempts[r.outbox_id].append(
                        Attempt(attempt=r.attempt, at=r.at, status_code=r.status_code, latency_ms=r.latency_ms, error=r.error)
                    )
        return [
            CallbackDelivery(
                id=r.id,
                event_id=r.event_id,
                type=r.type,
                body=bytes(r.body),
                state=DeliveryState(r.state),
                created_at=r.created_at,
                next_attempt_at=r.next_attempt_at if r.state == PENDING else None,
                finished_at=r.finished_at,
                last_error=r.last_error,
                attempts=attempts.get(r.id, []),
            )
            for r in rows
        ]

    async def prune(self, *, finished_before: datetime) -> int:
        finished = sa.select(o.c.id).where(o.c.state != PENDING, o.c.finished_at < finished_before)
        async with self._db.write() as conn:
            await conn.execute(sa.delete(webhook_attempts).where(webhook_attempts.c.outbox_id.in_(finished)))
            result = await conn.execute(sa.delete(o).where(o.c.state != PENDING, o.c.finished_at < finished_before))
        return result.rowcount
