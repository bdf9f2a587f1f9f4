"""SQLite through aiosqlite, one trip to the connection's thread per statement.

aiosqlite runs every call on a thread of its own, and SQLAlchemy's adapter makes one call per
DB-API step: open a cursor, execute, fetch, close, and the ``BEGIN`` we emit is a statement of
its own. A read was four trips and its ``BEGIN`` three more; in the embedded profile these trips
(a queue put, a thread wake-up, a callback back on the event loop) were a third of the CPU.

Here a statement is one trip: the thread opens a cursor, runs the statement, fetches every row
and closes the cursor, and the ``BEGIN`` of a transaction is run in the same trip as its first
statement. A commit or rollback with no transaction open (nothing ran since the BEGIN, or a
read-only block already ended) costs no trip. The thread reports after each trip whether a
transaction is open; after a failure it is assumed open, so that the rollback is never skipped.

Used through ``DBAPI``: ``create_async_engine(url, module=DBAPI)`` with a ``sqlite+aiosqlite``
URL. Server-side cursors keep SQLAlchemy's own (a trip per step). It calls aiosqlite's
``Connection._execute`` (as SQLAlchemy's own adapter uses its ``_tx`` queue); every SQLite test
goes through it.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_


def _run(
    connection: aiosqlite.Connection, begin: str | None, sql: str, parameters: Any, many: bool
) -> tuple[Any, list[Any] | None, int, int | None, bool]:
    """On the connection's thread: the pending BEGIN, the statement, all its rows."""
    db: sqlite3.Connection = connection._conn
    if begin is not None:
        db.execute(begin).close()
    cursor = db.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description is not None else None
        return description, rows, cursor.rowcount, cursor.lastrowid, db.in_transaction
    finally:
        cursor.close()


def _begin(connection: aiosqlite.Connection, begin: str) -> None:
    connection._conn.execute(begin).close()


def _finish(connection: aiosqlite.Connection, commit: bool) -> None:
    db: sqlite3.Connection = connection._conn
    if commit:
        db.commit()
    else:
        db.rollback()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose ``execute`` is one trip and whose rows arrive with it."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")
    # nothing to close on the thread: the cursor there was closed in the same trip
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: OneTripConnection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._trip(operation, seq_of_parameters, many=True)

    def _trip(self, operation: str, parameters: Any, *, many: bool) -> None:
        conn = self._adapt_connection
        assert isinstance(conn, OneTripConnection)
        begin, conn.pending_begin = conn.pending_begin, None
        conn.in_transaction = True  # until the thread says otherwise: a failure leaves it unknown
        try:
            description, rows, rowcount, lastrowid, in_transaction = await_(
                self._connection._execute(_run, self._connection, begin, operation, parameters, many)
            )
        except Exception as error:  # noqa: BLE001 - the adapter maps it to the DB-API's errors
            conn._handle_exception(error)
        conn.in_transaction = in_transaction
        self._description = description
        self._rows = collections.deque(rows or ())
        self._rowcount = rowcount
        self._lastrowid = lastrowid

    def close(self) -> None:
        self._rows.clear()

    def nextset(self) -> None:
        return None


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """Keeps a transaction's BEGIN until its first statement, and knows whether one is open."""

    __slots__ = ("in_transaction", "pending_begin")
    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        self.in_transaction = False

    def begin(self, statement: str) -> None:
        """Opens a transaction with ``statement`` (BEGIN, BEGIN IMMEDIATE) on the next trip."""
        self.pending_begin = statement

    def cursor(self, server_side: bool = False) -> Any:
        if server_side:  # SQLAlchemy's own, a trip per step: the BEGIN cannot ride with its statement
            if self.pending_begin is not None:
                begin, self.pending_begin = self.pending_begin, None
                await_(self._connection._execute(_begin, self._connection, begin))
            self.in_transaction = True  # its steps bypass the bookkeeping: never skip an end
        return super().cursor(server_side)

    def commit(self) -> None:
        self._end(commit=True)

    def rollback(self) -> None:
        self._end(commit=False)

    def _end(self, *, commit: bool) -> None:
        self.pending_begin = None
        if not self.in_transaction or not self._connection._connection:
            return
        try:
            await_(self._connection._execute(_finish, self._connection, commit))
        except Exception as error:  # noqa: BLE001 - the adapter maps it to the DB-API's errors
            self._handle_exception(error)
        self.in_transaction = False


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        connection = aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True
        return OneTripConnection(self, await_(connection))


DBAPI = OneTripDBAPI(aiosqlite, sqlite3)
