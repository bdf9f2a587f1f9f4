"""The embedded profile's SQLite adapter: one trip to aiosqlite's thread per statement, with a
transaction's BEGIN run in the same trip as its first statement, and transactions that behave as
before (atomic, isolated, the write lock taken at the first statement and released at the end)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa

from chat4all.adapters.sql.database import Database
from chat4all.domain.errors import Unavailable


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/chat.db")
    async with database.write() as conn:
        await conn.execute(sa.text("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
    yield database
    await database.close()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions sent to aiosqlite's thread, by name, from now on."""
    sent: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return sent


@pytest.fixture
def other(db: Database) -> Iterator[sqlite3.Connection]:
    """A second connection to the same file, not waiting for locks."""
    path = sa.make_url(db.url).database
    assert path
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    yield connection
    connection.close()


def _write_lock_is_free(other: sqlite3.Connection) -> bool:
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    other.execute("ROLLBACK")
    return True


async def test_a_read_is_one_trip_and_its_end_another(db: Database, trips: list[str]) -> None:
    async with db.read() as conn:
        rows = (await conn.execute(sa.text("SELECT a FROM t"))).all()
    assert rows == []
    assert trips == ["_run", "_finish"]


async def test_a_write_is_a_trip_per_statement_and_one_for_the_commit(db: Database, trips: list[str]) -> None:
    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO t (a, b) VALUES (1, 'x')"))
        result = await conn.execute(sa.text("INSERT INTO t (a, b) VALUES (:a, :b)"), [{"a": 2, "b": "y"}, {"a": 3, "b": "z"}])
        assert result.rowcount == 2
    assert trips == ["_run", "_run", "_finish"]
    async with db.read() as conn:
        assert (await conn.execute(sa.text("SELECT a, b FROM t ORDER BY a"))).all() == [(1, "x"), (2, "y"), (3, "z")]


async def test_a_block_that_ran_nothing_costs_no_trip(db: Database, trips: list[str]) -> None:
    async with db.write():
        pass
    async with db.read():
        pass
    assert trips == []


async def test_a_failed_statement_rolls_back_the_whole_transaction(db: Database, other: sqlite3.Connection) -> None:
    with pytest.raises(Unavailable):  # an OperationalError (no such table), as before this adapter
        async with db.write() as conn:
            await conn.execute(sa.text("INSERT INTO t (a, b) VALUES (1, 'x')"))
            await conn.execute(sa.text("INSERT INTO missing VALUES (1)"))
    with pytest.raises(sa.exc.IntegrityError):
        async with db.write() as conn:
            await conn.execute(sa.text("INSERT INTO t (a, b) VALUES (2, 'y')"))
            await conn.execute(sa.text("INSERT INTO t (a, b) VALUES (2, 'again')"))
    async with db.read() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 0
    assert _write_lock_is_free(other)  # no transaction was left open holding it


async def test_a_write_holds_the_write_lock_from_its_first_statement_to_its_end(
    db: Database, other: sqlite3.Connection
) -> None:
    async with db.write() as conn:
        await conn.execute(sa.text("SELECT 1"))  # BEGIN IMMEDIATE ran with it, not deferred to the INSERT
        assert not _write_lock_is_free(other)
        await conn.execute(sa.text("INSERT INTO t (a, b) VALUES (1, 'x')"))
    assert _write_lock_is_free(other)


async def test_the_statements_of_a_read_see_one_snapshot(db: Database, other: sqlite3.Connection) -> None:
    async with db.read() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 0
        other.execute("INSERT INTO t (a, b) VALUES (1, 'x')")  # committed meanwhile
        assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 0
    async with db.read() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 1


async def test_a_server_side_cursor_runs_inside_the_transaction(db: Database, other: sqlite3.Connection) -> None:
    async with db.write() as conn:
        result = await conn.stream(sa.text("SELECT a FROM t"))  # SQLAlchemy's own cursor: its BEGIN runs first
        assert [row async for row in result] == []
        assert not _write_lock_is_free(other)
    assert _write_lock_is_free(other)
