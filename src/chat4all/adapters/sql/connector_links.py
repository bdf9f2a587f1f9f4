"""ConnectorLinks on SQL: which bridged message a provider's message id stands for."""

from __future__ import annotations

import sqlalchemy as sa

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import connector_links
from chat4all.ports import ConnectorLink

t = connector_links


class SqlConnectorLinks:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(self, channel: str, external_id: str, provider_message_id: str) -> ConnectorLink | None:
        query = sa.select(t).where(
            t.c.channel == channel, t.c.external_id == external_id, t.c.provider_message_id == provider_message_id
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return ConnectorLink(**row._mapping) if row else None

    async def latest(self, channel: str, external_id: str) -> ConnectorLink | None:
        query = (
            sa.select(t)
            .where(t.c.channel == channel, t.c.external_id == external_id)
            .order_by(t.c.created_at.desc(), t.c.provider_message_id.desc())
            .limit(1)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return ConnectorLink(**row._mapping) if row else None
