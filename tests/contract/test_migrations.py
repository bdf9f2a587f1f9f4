"""The Alembic migrations build exactly the schema that ``adapters/sql/schema.py`` describes.

If this fails, a change to schema.py has no migration (or a migration differs from schema.py);
the diff in the message says which table, column, index or constraint.
"""

from __future__ import annotations

from pprint import pformat
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.migrate import MIGRATIONS
from chat4all.adapters.sql.schema import metadata


def _differences(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": True, "target_metadata": metadata},
    )
    return compare_metadata(context, metadata)


async def test_the_migrated_database_matches_the_declared_schema(database: Database) -> None:
    async with database.read() as conn:
        differences = await conn.run_sync(_differences)

    assert differences == [], "migrations and schema.py disagree:\n" + pformat(differences)


async def test_the_database_is_at_the_newest_revision(database: Database) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = set(ScriptDirectory.from_config(config).get_heads())

    async with database.read() as conn:
        current = await conn.run_sync(lambda sync: set(MigrationContext.configure(sync).get_current_heads()))

    assert len(heads) == 1, f"the migrations branch: {heads}"
    assert current == heads
