"""AcceptedIds in the database (the embedded profile): the ``accepted_ids`` table.

Claims are group-committed (``batching.GroupCommit``): the claims that arrive while a write is in
flight share the next transaction, which reads which ids are taken and inserts the rest. Rows
older than the TTL are deleted now and then by the same writer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import accepted_ids
from chat4all.batching import GroupCommit
from chat4all.domain.ids import utcnow

_Claim = tuple[str, str, str]  # message_id, sender, conversation_id
_SWEEP_EVERY_S = 60.0


class SqlAcceptedIds:
    def __init__(self, db: Database, *, ttl_s: float) -> None:
        self._db = db
        self._ttl = timedelta(seconds=ttl_s)
        self._claims: GroupCommit[_Claim, tuple[str, str] | None] = GroupCommit(self._flush, max_batch=500)
        self._next_sweep = 0.0

    async def claim(self, message_id: str, *, sender: str, conversation_id: str) -> tuple[str, str] | None:
        return await self._claims.submit((message_id, sender, conversation_id))

    async def release(self, message_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(sa.delete(accepted_ids).where(accepted_ids.c.message_id == message_id))

    async def _flush(self, claims: Sequence[_Claim]) -> list[tuple[str, str] | None]:
        now = utcnow()
        async with self._db.write() as conn:
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + _SWEEP_EVERY_S
                await conn.execute(sa.delete(accepted_ids).where(accepted_ids.c.accepted_at < now - self._ttl))
            ids = list(dict.fromkeys(c[0] for c in claims))
            taken: dict[str, tuple[str, str]] = {
                r.message_id: (r.sender, r.conversation_id)
                for r in await conn.execute(
                    sa.select(accepted_ids.c.message_id, accepted_ids.c.sender, accepted_ids.c.conversation_id).where(
                        self._db.one_of(accepted_ids.c.message_id, ids)
                    )
                )
            }
            results: list[tuple[str, str] | None] = []
            fresh: list[dict[str, object]] = []
            for message_id, sender, conversation_id in claims:
                if message_id in taken:
                    results.append(taken[message_id])
                    continue
                taken[message_id] = (sender, conversation_id)
                fresh.append(
                    {"message_id": message_id, "sender": sender, "conversation_id": conversation_id, "accepted_at": now}
                )
                results.append(None)
            if fresh:
                await conn.execute(sa.insert(accepted_ids), fresh)
        return results
