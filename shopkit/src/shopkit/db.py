"""Storage plumbing of a service: the declarative base of its tables, the
``outbox`` and ``inbox`` tables of :mod:`shopkit.kafka`, engines and sessions.

The same code runs on SQLite (aiosqlite, the default) and PostgreSQL
(asyncpg, when DATABASE_URL is set). A process runs one service, so one
:class:`Base` holds that service's tables together with ``outbox`` and
``inbox``, and :func:`create_schema` creates them all.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, Text, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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


def make_engine(url: str) -> AsyncEngine:
    """An engine for url (already normalised to an async driver).

    SQLite gets one pooled connection: every transaction runs after the
    previous one, which is what SQLite can do anyway, without "database is
    locked" errors. PostgreSQL gets a normal pool and checks connections
    before use so that a restarted server is picked up again."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            connect_args={"timeout": 30},
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, pool_timeout=10)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_schema(engine: AsyncEngine) -> None:
    """Create the tables of Base that do not exist yet.

    The service's tables are in Base once its table module is imported."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


async def open_database(url: str, attempts: int = 30) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """An engine for url and its session factory, with the schema created.

    While the database is not reachable, creating the schema is retried once a
    second, attempts times (30 by default); the last failure is raised."""
    engine = make_engine(url)
    for attempt in range(1, attempts + 1):
        try:
            await create_schema(engine)
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
