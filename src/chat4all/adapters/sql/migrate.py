"""Runs the Alembic migrations on a Database (at start in the embedded profile, or by
``chat4all migrate``)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from chat4all.adapters.sql.database import Database
from chat4all.domain.errors import Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.write() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))


def code_head() -> str:
    """The newest migration this code has."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


class SchemaCheck:
    """Readiness of the schema: the database is at the migration this code was written for.
    A database behind the code (``chat4all migrate`` not run) is not ready."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.head = code_head()

    async def start(self) -> None:
        """Nothing: the runtime migrates first where it should (SQLite)."""

    async def close(self) -> None:
        """Nothing: the database is the runtime's."""

    async def ping(self) -> None:
        async with self._db.read() as conn:
            try:
                rows = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars().all()
            except sa.exc.DBAPIError:
                rows = []
        if self.head not in rows:
            found = ", ".join(rows) or "none"
            raise Unavailable(f"schema at {found}, this code needs {self.head}: run `chat4all migrate`")
