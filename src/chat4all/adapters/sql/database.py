"""The async engine, and the two ways to use it: ``read()`` and ``write()``.

SQLite allows one writer at a time; writes in this process are serialized by a lock and open
with ``BEGIN IMMEDIATE`` so that two transactions never deadlock upgrading their locks, and
WAL mode lets reads go on meanwhile. PostgreSQL needs neither.

Reads while the primary is away (R11.4): with a ``read_url`` (a replica, or a pool of them such
as HAProxy's replica port), a read whose connection to the primary cannot be opened is served by
the replica instead, and so is every read for the next ``primary_retry_s`` seconds; then the
primary is tried again. Writes never go to the replica: they fail with Unavailable (503) until a
primary is back. A replica read may lag the primary by what the replica has not replayed yet
(HAProxy serves only replicas less than 16 MB of WAL behind; in practice milliseconds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chat4all.adapters.sql import schema, sqlite_driver
from chat4all.domain.errors import Unavailable
from chat4all.observability.logging import get_logger

log = get_logger(__name__)

# errors that mean "the database cannot take work now", not "this statement is wrong"
_OUTAGES = (OperationalError, InterfaceError, OSError, DBAPIError)


def _is_outage(exc: BaseException) -> bool:
    """A lost or refused connection, or a server that cannot take this work now: also a
    statement cut off by a server that died or was demoted (HAProxy shuts the sessions of a node
    that stops being what its port promises), a shutdown in progress (SQLSTATE 57P…), or a write
    that reached a node already read-only (25006)."""
    if isinstance(exc, (OperationalError, InterfaceError, OSError)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    cause: BaseException | None = exc.orig
    while cause is not None:
        state = str(getattr(cause, "sqlstate", "") or "")
        if state.startswith(("08", "57P")) or state == "25006" or type(cause).__name__ == "ConnectionDoesNotExistError":
            return True
        cause = cause.__cause__
    return False


# one statement naming every table, reading no row: a new PostgreSQL server process builds the
# catalog caches of a table the first time a statement names it (a few ms per table); a pool's
# worth of them each doing it for every table during the first second of load was a stall
_TOUCH_TABLES = sa.union_all(
    *(sa.select(sa.literal(1)).select_from(t).limit(0) for t in schema.metadata.sorted_tables)
)


class Database:
    def __init__(
        self, url: str, *, pool_size: int = 10, read_url: str | None = None, primary_retry_s: float = 2.0
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if read_url and self.is_sqlite:
            raise ValueError("a read replica needs PostgreSQL")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            kwargs["connect_args"] = {"timeout": 30}
            if sa.engine.make_url(url).get_driver_name() == "aiosqlite":  # one trip per statement
                kwargs["module"] = sqlite_driver.DBAPI
        else:
            # no pre-ping: it costs a round trip per checkout. After a server restart the first
            # statement on each stale connection fails (503, the caller retries) and the pool
            # drops every connection older than the failure.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
            # Plans for the batch's actual keys. A generic plan is made once per prepared statement,
            # and one made while a table was small (a fresh deployment) scans it in full for ever
            # after: "message_id = ANY($1)" seq-scanned messages, 0.6 s a batch by 100k rows.
            # a connection that cannot be opened in 5 s is an outage, not a wait of asyncpg's 60 s
            kwargs["connect_args"] = {"server_settings": {"plan_cache_mode": "force_custom_plan"}, "timeout": 5}
        # JSON columns (payloads, metadata) through orjson: the standard library's encoder was a
        # tenth of the router's persist
        kwargs.update(json_serializer=_json_text, json_deserializer=orjson.loads)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.replica: AsyncEngine | None = create_async_engine(read_url, **kwargs) if read_url else None
        self._primary_retry_s = primary_retry_s
        self._primary_down_until = 0.0
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads: on PostgreSQL in autocommit, so no BEGIN/ROLLBACK round trips;
        on the replica while the primary cannot be reached (when there is one)."""
        if self.replica is None:
            async with self._connect() as conn:
                if not self.is_sqlite:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
            return
        conn = await self._open_for_read()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
        except _OUTAGES as exc:
            if not _is_outage(exc):
                raise
            if conn.engine is self.engine:
                self._primary_down()
            raise Unavailable("the database is not reachable") from exc
        finally:
            await conn.close()

    @property
    def reading_from_replica(self) -> bool:
        return self.replica is not None and time.monotonic() < self._primary_down_until

    async def _open_for_read(self) -> AsyncConnection:
        assert self.replica is not None
        if not self.reading_from_replica:
            try:
                return await self.engine.connect()
            except Exception:  # noqa: BLE001 - whatever stops a connection opening, the replica may answer
                self._primary_down()
        try:
            return await self.replica.connect()
        except Exception as exc:
            raise Unavailable("neither the database nor its replica is reachable") from exc

    def _primary_down(self) -> None:
        self._primary_down_until = time.monotonic() + self._primary_retry_s

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
            if not _is_outage(exc):
                raise
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
        """Opens the pool's connections (PostgreSQL) before the process says it is ready.

        Opened on first use instead, the first burst of load opened them all at once (a TCP
        connect and a SCRAM handshake each) while requests waited: the first second of a fresh
        node answered in hundreds of ms. A database that is not there yet is not an error here
        (readiness reports it; connections then open on first use)."""
        if self.is_sqlite:
            return
        size = self.engine.pool.size()  # type: ignore[attr-defined]

        async def one() -> AsyncConnection:
            conn = await self.engine.connect()
            await conn.execute(sa.text("SELECT 1"))
            try:  # every table once: the server process loads its catalog entries now, not under load
                await conn.execute(_TOUCH_TABLES)
            except DBAPIError:  # not migrated yet: readiness says so
                await conn.rollback()
            return conn

        results = await asyncio.gather(*(asyncio.wait_for(one(), 10) for _ in range(size)), return_exceptions=True)
        for result in results:
            if isinstance(result, AsyncConnection):
                await result.close()  # back to the pool, open
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning("database pool not warmed", failed=len(failed), error=repr(failed[0]))

    async def ping(self) -> None:
        """Ready when reads can be served: by the primary, or by the replica while it is away."""
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
        if self.replica is not None:
            await self.replica.dispose()


# The same three forms as statements built once, for hot paths: built at import (or once per
# dialect) with named parameters and executed with their values, so that no SQL element is made
# per call (building one, and then its cache key, cost CPU and left cyclic garbage for the collector).


def in_param(column: sa.ColumnElement[Any], name: str, *, postgres: bool) -> sa.ColumnElement[bool]:
    """``column IN :name``, ``name`` bound to a list: ``= ANY(:name)`` of one array on PostgreSQL
    (as ``Database.one_of``), an expanding IN elsewhere."""
    if postgres:
        return column == sa.any_(sa.bindparam(name, type_=ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


def keys_in_param(columns: Sequence[sa.ColumnElement[Any]], name: str, *, postgres: bool) -> sa.ColumnElement[bool]:
    """``(columns) IN keys`` (as ``Database.keys_in``). Bound with ``key_params(name, keys, ...)``."""
    if postgres:
        keyset = key_table_param(columns, [f"{name}{i}" for i in range(len(columns))])
        return sa.tuple_(*columns).in_(sa.select(*keyset.c))
    return sa.tuple_(*columns).in_(sa.bindparam(name, expanding=True))


def key_params(name: str, keys: Sequence[tuple[Any, ...]], *, postgres: bool) -> dict[str, Any]:
    """The parameters of ``keys_in_param(columns, name, ...)`` for these keys (at least one)."""
    if postgres:
        return {f"{name}{i}": list(column) for i, column in enumerate(zip(*keys, strict=True))}
    return {name: list(keys)}


def key_table_param(columns: Sequence[sa.ColumnElement[Any]], names: Sequence[str]) -> sa.TableValuedAlias:
    """PostgreSQL: ``unnest(:names[0], :names[1], ...)`` (as ``Database.key_table``), a table with
    columns k0, k1, ... typed like ``columns``; each name is bound to one column's values."""
    arrays = [sa.bindparam(n, type_=ARRAY(c.type)) for n, c in zip(names, columns, strict=True)]
    return sa.func.unnest(*arrays).table_valued(*(f"k{i}" for i in range(len(columns)))).render_derived()


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


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
        # run on the thread together with the transaction's first statement
        conn.connection.dbapi_connection.begin("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[union-attr]
