"""ConnectorConfigStore on SQL: one row per channel, the configuration as JSON."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import connector_configs
from chat4all.domain.connectors import ConnectorConfig

t = connector_configs


class SqlConnectorConfigStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._dialect = sqlite if db.is_sqlite else postgresql

    async def list_configs(self) -> list[ConnectorConfig]:
        async with self._db.read() as conn:
            rows = await conn.execute(sa.select(t.c.config).order_by(t.c.channel))
            return [ConnectorConfig.model_validate(r.config) for r in rows]

    async def get_config(self, channel: str) -> ConnectorConfig | None:
        async with self._db.read() as conn:
            raw = await conn.scalar(sa.select(t.c.config).where(t.c.channel == channel))
        return ConnectorConfig.model_validate(raw) if raw is not None else None

    async def put_config(self, config: ConnectorConfig) -> None:
        values = _row(config)
        upsert = self._dialect.insert(t).values(**values)
        upsert = upsert.on_conflict_do_update(
            index_elements=["channel"], set_={"config": values["config"], "updated_at": values["updated_at"]}
        )
        async with self._db.write() as conn:
            await conn.execute(upsert)

    async def add_config(self, config: ConnectorConfig) -> bool:
        insert = self._dialect.insert(t).values(**_row(config)).on_conflict_do_nothing(index_elements=["channel"])
        async with self._db.write() as conn:
            return (await conn.execute(insert)).rowcount == 1

    async def delete_config(self, channel: str) -> bool:
        async with self._db.write() as conn:
            return (await conn.execute(sa.delete(t).where(t.c.channel == channel))).rowcount > 0


def _row(config: ConnectorConfig) -> dict[str, object]:
    return {"channel": config.channel, "config": config.model_dump(mode="json"), "updated_at": config.updated_at}
