"""Storage plumbing of a service: the declarative base of its tables, the
``outbox`` and ``inbox`` tables of :mod:`shopkit.kafka`, engines and sessions.

The same code runs on SQLite (aiosqlite, the default) and PostgreSQL
(asyncpg, when DATABASE_URL is set). A process runs one service, so one
:class:`Base` holds that service's tables together with ``outbox`` and
``inbox``; the service's migrations (:mod:`shopkit.migrations`) build them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, Text, event, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shopkit import sqlite
from shopkit.wire import utcnow

log = logging.getLogger(__name__)

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants BIGINT ids.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    """Base of the ORM tables: the service's own, plus Outbox and Inbox."""


class Outbox(Base):
    """Events written in the same transaction as the change they describe,
    published to Kafka by the relay and deleted after the broker's ack."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Inbox(Base):
    """Ids of the Kafka events already applied, so a redelivery changes nothing."""

    __tablename__ = "inbox"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


def normalize_database_url(url: str) -> str:
    """Return an async SQLAlchemy URL for a PostgreSQL URL, an SQLite URL or a file path.

    ``postgresql://`` and ``postgres://`` become ``postgresql+asyncpg://``;
    ``sqlite://`` becomes ``sqlite+aiosqlite://``; a bare path is an SQLite file.
    URLs that already name a driver are returned unchanged.
    """
    url = url.strip()
    if "://" not in url:
        return f"sqlite+aiosqlite:///{Path(url).expanduser().resolve()}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    if scheme == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    return url


READ_POOL_SIZE = 4
"""Connections of an SQLite database's read pool (see :func:`open_readers`)."""

PG_POOL_SIZE = 30
"""Connections of a process's PostgreSQL pool, opened on demand and kept
(see :func:`make_engine`)."""


def _sqlite_connect_events(engine: AsyncEngine, *, begin: str | None, query_only: bool) -> None:
    """WAL and synchronous=NORMAL on every connection; with begin, the
    transactions the engine opens start with that statement instead of the
    driver's own (which starts one only before the first write)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        if query_only:
            cur.execute("PRAGMA query_only=ON")
        cur.close()
        if begin is not None:
            dbapi_conn.isolation_level = None

    if begin is not None:

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql(begin)


def _sqlite_writer(url: str) -> Callable[[], Awaitable[Any]]:
    """Connections of shopkit.sqlite (one trip to the connection's thread per
    statement) to the SQLite file of url. A writer's transactions take the
    database's writer file lock (``<file>.writer-lock``) before BEGIN
    IMMEDIATE, so the writers of several processes wait for each other in
    the kernel instead of in SQLite's sleeping busy handler (which stays, at
    30 s, for anything else that writes)."""
    path = make_url(url).database or ":memory:"
    in_memory = path == ":memory:" or path.startswith("file:")
    lock = None if in_memory else f"{path}.writer-lock"
    return sqlite.connector(path, write_lock=lock, timeout=30)


def make_engine(url: str) -> AsyncEngine:
    """An engine for url (already normalised to an async driver).

    SQLite gets one pooled connection per process, whose transactions start
    with ``BEGIN IMMEDIATE``: a transaction holds the database's write lock
    from its first statement, so a read-then-write transaction can never
    fail half-way because another process wrote in between; other writers
    (other worker processes) wait up to 30 s for it. Reads that need no
    transaction go to the read pool (:func:`open_readers`).

    PostgreSQL gets a pool of up to PG_POOL_SIZE (30) connections, opened
    when needed and then kept: no overflow connections, because SQLAlchemy
    closes an overflow connection when it is returned while the pool is full,
    so a process with more requests in flight than its pool size opened and
    closed a connection per request (a server backend forked, TLS tried,
    authentication, every statement prepared again). A request beyond the
    30th waits for a connection, up to 10 s. No test query per checkout: a
    connection that died with a restarted server fails the one request using
    it (503 UNAVAILABLE, see :mod:`shopkit.errors`), and SQLAlchemy then
    drops every pooled connection so the next requests reconnect."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            async_creator=_sqlite_writer(url),
        )
        _sqlite_connect_events(engine, begin=sqlite.BEGIN_WRITE, query_only=False)
        return engine
    return create_async_engine(url, pool_size=PG_POOL_SIZE, max_overflow=0, pool_timeout=10)


async def open_readers(engine: AsyncEngine) -> tuple[async_sessionmaker[AsyncSession], Callable[[], Awaitable[None]]]:
    """Sessions for requests that only read, and the function that closes them.

    On SQLite they use a pool of READ_POOL_SIZE read-only connections beside
    the writer's one: in WAL mode readers see the last commit and neither wait
    for the writer nor hold it up. On PostgreSQL they are sessions of engine
    in autocommit: a read is one round trip, without BEGIN and ROLLBACK."""
    if engine.dialect.name != "sqlite":

        async def nothing() -> None:
            return None

        return make_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT")), nothing
    readers = create_async_engine(
        engine.url,
        pool_size=READ_POOL_SIZE,
        max_overflow=0,
        pool_timeout=60,
        # The stock aiosqlite driver, not shopkit.sqlite: with one-trip
        # statements a returned connection goes back to the pool without a
        # pause, and new requests took it ahead of those already waiting
        # (GET /stock/1 p99 1-1.7 s against 0.1 s, at 1.15x the req/s).
        connect_args={"timeout": 30},
    )
    _sqlite_connect_events(readers, begin=None, query_only=True)
    return make_session_factory(readers), readers.dispose


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def open_database(
    url: str, prepare: Callable[[AsyncEngine], Awaitable[None]], attempts: int = 30
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """An engine for url and its session factory, after prepare(engine) (the
    schema migrations) succeeded.

    While the database is not reachable, prepare is retried once a second,
    attempts times (30 by default); the last failure is raised."""
    engine = make_engine(url)
    for attempt in range(1, attempts + 1):
        try:
            await prepare(engine)
            break
        except Exception as exc:
            if attempt == attempts:
                await engine.dispose()
                raise
            log.warning("database not reachable yet (%r), retrying", exc)
            await asyncio.sleep(1)
    return engine, make_session_factory(engine)


async def drop_all_tables(engine: AsyncEngine) -> None:
    """Drop every table in the database, ours or not (tests only)."""

    def _drop(sync_conn) -> None:  # type: ignore[no-untyped-def]
        meta = MetaData()
        meta.reflect(sync_conn)
        meta.drop_all(sync_conn)

    async with engine.begin() as conn:
        await conn.run_sync(_drop)


async def ping(engine: AsyncEngine) -> None:
    """Raise when the database cannot be reached."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
