"""UTCDateTime on SQLite: the same text as SQLAlchemy's DATETIME always wrote (rows written
before and after compare and sort alike), made without its per-field formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import UTCDateTime

DIALECT = sqlite.dialect()
MOMENTS = [
    datetime(2026, 11, 30, 17, 5, 9, 123456, tzinfo=UTC),
    datetime(2026, 11, 30, 17, 5, 9, tzinfo=UTC),  # no microseconds: still written out
    datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=-3))),  # another zone: stored as UTC
    datetime(999, 3, 4, 5, 6, 7, 80, tzinfo=UTC),  # a year of three digits: zero-padded
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_the_text_is_sqlalchemys_datetime_text_of_the_utc_time(moment: datetime) -> None:
    ours = UTCDateTime().bind_processor(DIALECT)
    theirs = sa.DateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    assert ours is not None and theirs is not None
    assert ours(moment) == theirs(moment.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None


def test_a_naive_datetime_is_refused() -> None:
    process = UTCDateTime().bind_processor(DIALECT)
    assert process is not None
    with pytest.raises(ValueError, match="naive"):
        process(datetime(2026, 11, 30, 17, 5, 9))


async def test_a_stored_moment_reads_back_as_the_same_utc_moment(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/chat.db")
    table = sa.Table("moments", sa.MetaData(), sa.Column("at", UTCDateTime()))
    try:
        async with db.write() as conn:
            await conn.run_sync(table.metadata.create_all)
            await conn.execute(table.insert(), [{"at": m} for m in MOMENTS])
        async with db.read() as conn:
            read = (await conn.execute(sa.select(table.c.at))).scalars().all()
            later = (await conn.execute(sa.select(table.c.at).where(table.c.at > MOMENTS[1]))).scalars().all()
    finally:
        await db.close()
    assert read == MOMENTS
    assert all(m.tzinfo is UTC for m in read)
    assert later == [MOMENTS[0]]
