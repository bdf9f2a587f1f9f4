"""DeliveryStore on SQL: the delivery aggregate's writes, in one place.

Creation and receipts are statements on the message tables (``messages.py``: one transaction
per batch, guarded forward-only moves, history and status outbox rows with the change); the
operator's requeue and an external delivery's retry state are statements on the pending rows
(``connector_queue.py``). This class is the one port the delivery service writes through.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from chat4all.adapters.sql.connector_queue import SqlDeliveryQueue
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.messages import SqlMessageStore
from chat4all.ports import ConnectorLink, DeliveryKey, Moved, NewMessage, PersistResult, Receipt


class SqlDeliveryStore:
    def __init__(self, db: Database) -> None:
        self._messages = SqlMessageStore(db)
        self._queue = SqlDeliveryQueue(db)

    async def persist_batch(self, batch: Sequence[NewMessage], *, at: datetime) -> PersistResult:
        return await self._messages.persist_batch(batch, at=at)

    async def advance_many(self, receipts: Sequence[Receipt], *, at: datetime) -> Moved:
        return await self._messages.advance_many(receipts, at=at)

    async def requeue(self, keys: Sequence[DeliveryKey], *, now: datetime, detail: str) -> Moved:
        return await self._queue.requeue(keys, now=now, detail=detail)

    async def sent(self, key: DeliveryKey, *, attempts: int, links: Sequence[ConnectorLink] = ()) -> None:
        await self._queue.sent(key, attempts=attempts, links=links)

    async def retry(self, key: DeliveryKey, *, attempts: int, at: datetime, error: str) -> None:
        await self._queue.retry(key, attempts=attempts, at=at, error=error)

    async def finish(self, key: DeliveryKey, *, attempts: int) -> None:
        await self._queue.finish(key, attempts=attempts)
