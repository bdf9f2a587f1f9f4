"""The async engine, and the two ways to use it: ``read()`` and ``write()``.

SQLite allows one writer at a time; writes in this process are serialized by a lock and open
with ``BEGIN IMMEDIATE`` so that two transactions never deadlock upgrading their locks, and
WAL mode lets reads go on meanwhile. PostgreSQL needs neither.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chat4all.domain.errors import Unavailable


# errors that mean "the database cannot take work now", not "this statement is wrong"
_OUTAGES = (OperationalError, InterfaceError, OSError)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # no pre-ping: it costs a round trip per checkout. After a server restart the first
            # statement on each stale connection fails (503, the caller retries) and the pool
            # drops every connection older than the failure.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
            # Plans for the batch's actual keys. A generic plan is made once per prepared statement,
            # and one made while a table was small (a fresh deployment) scans it in full for ever
            # after: "message_id = ANY($1)" seq-scanned messages, 0.6 s a batch by 100k rows.
            kwargs["connect_args"] = {"server_settings": {"plan_cache_mode": "force_custom_plan"}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads: on PostgreSQL in autocommit, so no BEGIN/ROLLBACK round trips."""
        async with self._connect() as conn:
            if not self.is_sqlite:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed when the block exits cleanly."""
        if self._write_lock is None:
            async with self._connect() as conn, conn.begin():
                yield conn
            return
        async with self._write_lock, self._connect(immediate=True) as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def _connect(self, *, immediate: bool = False) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                if immediate:
                    await conn.execution_options(sqlite_begin_immediate=True)
                yield conn
        except _OUTAGES as exc:
            raise Unavailable("the database is not reachable") from exc

    def one_of(self, column: sa.ColumnElement[Any], values: Iterable[Any]) -> sa.ColumnElement[bool]:
        """``column IN values``. On PostgreSQL as ``= ANY(array)``: one prepared statement and one
        plan whatever the count, where an IN list is a new statement for every length."""
        values = list(values)
        if self.is_sqlite:
            return column.in_(values)
        return column == sa.any_(sa.literal(values, ARRAY(column.type)))

    def keys_in(self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]) -> sa.ColumnElement[bool]:
        """``(columns) IN keys``. On PostgreSQL the keys come as one array per column and are
        joined through the index; a row-value IN list of a thousand keys took seconds."""
        if self.is_sqlite:
            return sa.tuple_(*columns).in_(keys)
        keyset = self.key_table(columns, keys)
        return sa.tuple_(*columns).in_(sa.select(*keyset.c))

    @staticmethod
    def key_table(columns: Sequence[sa.ColumnElement[Any]], rows: Sequence[tuple[Any, ...]]) -> sa.TableValuedAlias:
        """PostgreSQL: ``unnest(array, array, ...)``, a table of ``rows`` with columns k0, k1, ...
        typed like ``columns``, bound as one parameter per column."""
        arrays = [sa.literal([row[i] for row in rows], ARRAY(c.type)) for i, c in enumerate(columns)]
        return sa.func.unnest(*arrays).table_valued(*(f"k{i}" for i in range(len(columns)))).render_derived()

    async def start(self) -> None:
        """Nothing to do: connections open on first use."""

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


def _ensure_sqlite_dir(url: str) -> None:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # we emit BEGIN ourselves (below) so that the driver never opens transactions on its own
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a committed transaction survives a crash of the process
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_begin_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
