"""R11.4 on a real PostgreSQL: reads are served by the replica while the primary cannot be
reached, writes are refused (503) rather than sent to it, and the primary is tried again."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import users
from chat4all.domain.errors import Unavailable

pytestmark = pytest.mark.postgres


def _closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: connections are refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unreachable(url: str) -> str:
    return sa.make_url(url).set(host="127.0.0.1", port=_closed_port()).render_as_string(hide_password=False)


async def _count_users(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar_one())


async def test_reads_fall_back_to_the_replica_while_the_primary_is_unreachable(postgres_url: str) -> None:
    db = Database(_unreachable(postgres_url), read_url=postgres_url, primary_retry_s=60)
    try:
        assert await _count_users(db) >= 0
        assert db.reading_from_replica
        await db.ping()  # ready: reads are served
        with pytest.raises(Unavailable):
            async with db.write() as conn:
                await conn.execute(sa.text("SELECT 1"))
    finally:
        await db.close()


async def test_without_a_replica_a_read_fails_as_unavailable(postgres_url: str) -> None:
    db = Database(_unreachable(postgres_url))
    try:
        with pytest.raises(Unavailable):
            await _count_users(db)
    finally:
        await db.close()


async def test_the_primary_is_tried_again_after_the_retry_interval(postgres_url: str) -> None:
    db = Database(postgres_url, read_url=_unreachable(postgres_url), primary_retry_s=0)
    try:
        db._primary_down()  # as after a failed connection
        assert await _count_users(db) >= 0  # the retry interval is over: the (reachable) primary answers
        assert not db.reading_from_replica
    finally:
        await db.close()


def test_a_replica_needs_postgresql(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        Database("sqlite+aiosqlite:///x.db", read_url="postgresql+asyncpg://h/db")


async def test_a_started_database_has_its_pool_open_before_the_first_request(postgres_url: str) -> None:
    """Cold start: the connections a burst of requests needs are opened by start(), not by it."""
    db = Database(postgres_url, pool_size=4)
    try:
        await db.start()
        pool = db.engine.pool
        assert pool.checkedin() == 4  # type: ignore[attr-defined]
        await _count_users(db)
        assert pool.checkedin() == 4  # type: ignore[attr-defined]  # a request reused one
    finally:
        await db.close()


async def test_starting_while_the_database_is_unreachable_is_not_an_error(postgres_url: str) -> None:
    db = Database(_unreachable(postgres_url), pool_size=2)
    try:
        await db.start()  # readiness reports it; connections open on first use
        with pytest.raises(Unavailable):
            await db.ping()
    finally:
        await db.close()
