"""WebhookRegistry on SQL: webhook registrations when the metadata store is the database."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import webhooks
from chat4all.domain.webhooks import Webhook


class SqlWebhookRegistry:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, webhook: Webhook) -> None:
        async with self._db.write() as conn:
            await conn.execute(sa.insert(webhooks).values(**webhook.model_dump() | {"events": list(webhook.events)}))

    async def owned_by(self, owner: str) -> list[Webhook]:
        return (await self.for_owners([owner])).get(owner, [])

    async def for_owners(self, owners: Sequence[str]) -> dict[str, list[Webhook]]:
        if not owners:
            return {}
        w = webhooks
        query = sa.select(w).where(w.c.owner.in_(set(owners))).order_by(w.c.created_at, w.c.webhook_id)
        found: dict[str, list[Webhook]] = defaultdict(list)
        async with self._db.read() as conn:
            for row in await conn.execute(query):
                found[row.owner].append(_webhook(row))
        return dict(found)

    async def get(self, owner: str, webhook_id: str) -> Webhook | None:
        w = webhooks
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(w).where(w.c.webhook_id == webhook_id, w.c.owner == owner))).first()
        return _webhook(row) if row else None

    async def delete(self, owner: str, webhook_id: str) -> bool:
        w = webhooks
        async with self._db.write() as conn:
            deleted = await conn.execute(sa.delete(w).where(w.c.webhook_id == webhook_id, w.c.owner == owner))
        return deleted.rowcount > 0

    async def disable(self, owner: str, webhook_id: str, *, reason: str, at: datetime) -> bool:
        w = webhooks
        async with self._db.write() as conn:
            updated = await conn.execute(
                sa.update(w)
                .where(w.c.webhook_id == webhook_id, w.c.owner == owner, w.c.disabled_at.is_(None))
                .values(disabled_at=at, disabled_reason=reason)
            )
        return updated.rowcount > 0


def _webhook(row: sa.Row) -> Webhook:
    return Webhook.model_validate({**row._mapping, "events": tuple(row.events)})
