"""SQLite connections that go to their thread once per statement.

aiosqlite runs each ``sqlite3`` call on the connection's own thread and
hands the result back to the event loop. SQLAlchemy's aiosqlite adapter
makes three or four such trips for one statement (open a cursor, execute,
fetch the rows, close the cursor) and one for every commit and rollback,
also when there is no transaction to end. Each trip waits for the event
loop's next turn, and under load a turn takes as long as the other requests'
work queued before it. A write transaction holds SQLite's single write lock
across all its trips: an add-to-cart with an Idempotency-Key made 21 trips,
and the lock was held while the loop served other requests.

:class:`Connection` is an aiosqlite connection whose cursors run the
statement, read all its rows and close the ``sqlite3`` cursor in one trip,
and whose commit and rollback make no trip when no transaction is open. The
adapter sees the same interface (``cursor()`` as an async context manager,
``execute``, ``fetchall``, ``description``, ``rowcount``, ``lastrowid``);
an add's write transaction now makes 4 trips (BEGIN, the line, the outbox
row, COMMIT), 5 with a key. Only the writer uses it: on the read pool, a
connection given back without a trip to its thread was taken again at once
by a new request ahead of the requests already waiting for one, and the
slowest reads took seconds (see shopkit.db).

Rows are read whole in that trip: fine for the short results of these
services, not for streaming a large table (nothing here streams).

Writers of several processes (uvicorn workers) on one database file: SQLite
lets a writer that finds the write lock taken sleep and try again (its busy
handler, in steps up to 100 ms), so under contention a waiting write sleeps
well past the moment the lock is free, and the slowest adds took seconds
while the median took a tenth of that. A connection made with ``write_lock``
first takes an exclusive ``flock`` on that file, on its own thread, in the
same trip as :data:`BEGIN_WRITE`, and gives it back in the trip that commits
or rolls back: a waiting writer blocks in the kernel and is woken as soon as
the other process commits. SQLite's own lock (and busy timeout) stay as they
are for anything that writes without the file lock (migrations, tools).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiosqlite

_Description = tuple[tuple[Any, ...], ...] | None
_Outcome = tuple[_Description, int, int | None, list[Any]]


BEGIN_WRITE = "BEGIN IMMEDIATE"
"""The statement that opens a write transaction (see ``write_lock``)."""


class _WriteLock:
    """The cross-process file lock of one connection, used only on its thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.held = False

    def acquire(self) -> None:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.held = False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock too
        self.fd, self.held = None, False


def _run(conn: sqlite3.Connection, lock: _WriteLock | None, sql: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: the whole statement, rows included."""
    if lock is not None and sql == BEGIN_WRITE:
        lock.acquire()
        try:
            conn.execute(sql)
        except BaseException:
            lock.release()
            raise
        return None, -1, None, []
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class Cursor:
    """An aiosqlite-compatible cursor over rows already read (see the module doc)."""

    __slots__ = ("_conn", "_rows", "arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.description: _Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._rows = []

    async def _statement(self, sql: str, parameters: Any, many: bool) -> Cursor:
        outcome: _Outcome = await self._conn._execute(
            _run, self._conn._conn, self._conn._write_lock, sql, parameters, many
        )  # type: ignore[no-untyped-call]
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Cursor:
        return await self._statement(sql, () if parameters is None else parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor:
        return await self._statement(sql, parameters, True)

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        n = self.arraysize if size is None else size
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    async def fetchall(self) -> Sequence[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


def _end(conn: sqlite3.Connection, lock: _WriteLock | None, commit: bool) -> None:
    """On the connection's thread: commit or roll back, then free the file lock."""
    try:
        if conn.in_transaction:
            conn.commit() if commit else conn.rollback()
    finally:
        if lock is not None and (not conn.in_transaction or not commit):
            lock.release()


class Connection(aiosqlite.Connection):
    """An aiosqlite connection with one-trip cursors and, with write_lock,
    a cross-process writer lock (see the module doc)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], write_lock: str | None = None) -> None:
        super().__init__(connector, 64)
        self._write_lock = _WriteLock(write_lock) if write_lock else None

    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)

    def _open(self) -> bool:
        return self._conn.in_transaction or (self._write_lock is not None and self._write_lock.held)

    async def commit(self) -> None:
        if self._open():
            await self._execute(_end, self._conn, self._write_lock, True)  # type: ignore[no-untyped-call]

    async def rollback(self) -> None:
        if self._open():
            await self._execute(_end, self._conn, self._write_lock, False)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        lock = self._write_lock
        try:
            await super().close()
        finally:
            if lock is not None:
                lock.close()


def connector(path: str, write_lock: str | None = None, **kwargs: Any) -> Callable[[], Awaitable[Connection]]:
    """An ``async_creator`` for SQLAlchemy's aiosqlite dialect: connections
    to the database file at path, ``sqlite3.connect`` keyword arguments in
    kwargs (e.g. ``timeout``); write_lock names the lock file of the
    database's writers (see the module doc), None for none."""

    async def create() -> Connection:
        conn = Connection(lambda: sqlite3.connect(path, **kwargs), write_lock)
        conn._thread.daemon = True  # as SQLAlchemy's dialect does: never hold up the exit
        await conn
        return conn

    return create
