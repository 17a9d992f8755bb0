"""Storage of service B: tables, engine and sessions.

The same code runs on SQLite (aiosqlite, the default) and PostgreSQL
(asyncpg, when DATABASE_URL is set). The schema is created on start.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, MetaData, String, Text, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.models import utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants BIGINT ids.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    """Base of the ORM tables."""


class CartItem(Base):
    """The read model of carts, replicated from service A's cart-changes topic."""

    __tablename__ = "cart_items"
    __table_args__ = (Index("ix_cart_items_user", "user_id", "item_id"),)

    item_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger)
    product_id: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(DateTime)


class Order(Base):
    """A paid order. reservation_id is the key of its stock decrement on service A."""

    __tablename__ = "orders"
    # sqlite_autoincrement: never reuse the id of a deleted order.
    __table_args__ = (Index("ix_orders_user", "user_id", "created_at"), {"sqlite_autoincrement": True})

    order_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    reservation_id: Mapped[str] = mapped_column(String(64), unique=True)


class OrderItem(Base):
    """One line of an order."""

    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(BigInteger, index=True)
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    price_cents: Mapped[int] = mapped_column(BigInteger)


class Checkout(Base):
    """A payment in progress: at most one per user (unique user_id).

    Written before service A is asked for the stock and deleted in the same
    transaction that records the order, so a checkout row that outlives
    checkout_timeout_seconds marks a payment that died half-way; its stock is
    then given back (see StockRelease)."""

    __tablename__ = "checkouts"

    reservation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    item_ids: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class StockRelease(Base):
    """A reservation on service A to give back (POST /order/release_stock),
    retried until A confirms it."""

    __tablename__ = "stock_releases"

    reservation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")


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
    """Create the tables that do not exist yet."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


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
