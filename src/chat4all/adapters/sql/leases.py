"""Claiming due rows under a lease: the one helper behind every SQL work queue.

A queue's rows are due when their guard holds (``due``: e.g. pending and ``next_attempt_at <=
now``). A claim is a guarded UPDATE of the candidates (plus ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), so two claimers never take the same row; it moves ``next_attempt_at`` forward by
the lease and records the claimer, which is how a row held by a worker that died becomes due
again. On SQLite an idle claimer only reads: it takes the one write lock only if a row is due.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chat4all.adapters.sql.database import Database

T = TypeVar("T")
Rows = list[sa.Row]


async def claim_due(
    db: Database,
    table: sa.Table,
    *,
    candidates: sa.Select[Any],
    chosen: Callable[[Rows], sa.ColumnElement[bool]],
    due: Sequence[sa.ColumnElement[bool]],
    claimer: str,
    now: datetime,
    lease_s: float,
    returning: Sequence[sa.ColumnElement[Any]],
    then: Callable[[AsyncConnection, Rows], Awaitable[T]],
) -> T | None:
    """Leases ``candidates`` (a SELECT of ``table``'s keys, ordered and limited) that are still
    ``due`` to ``claimer``; ``chosen(rows)`` is the WHERE that names the selected rows. ``then``
    gets the claimed rows (the ``returning`` columns) in the same transaction; None when nothing
    was claimed."""
    if db.is_sqlite:
        async with db.read() as conn:
            if not (await conn.execute(candidates)).first():
                return None
    else:
        candidates = candidates.with_for_update(skip_locked=True, of=table)
    async with db.write() as conn:
        selected = list(await conn.execute(candidates))
        if not selected:
            return None
        claimed = (
            await conn.execute(
                sa.update(table)
                .where(chosen(selected), *due)
                .values(claimed_by=claimer, next_attempt_at=now + timedelta(seconds=lease_s))
                .returning(*returning)
            )
        ).all()
        if not claimed:
            return None
        return await then(conn, list(claimed))


async def release_claims(
    db: Database, table: sa.Table, *, pending: sa.ColumnElement[bool], claimer: str | None, now: datetime
) -> int:
    """Makes the ``pending`` rows held by ``claimer`` (None: by anyone) due now; how many."""
    held = table.c.claimed_by.is_not(None) if claimer is None else table.c.claimed_by == claimer
    async with db.write() as conn:
        result = await conn.execute(
            sa.update(table).where(pending, held).values(claimed_by=None, next_attempt_at=now)
        )
    return result.rowcount
