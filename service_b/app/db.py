"""Storage of service B: its tables.

They are declared on :class:`shopkit.db.Base`, next to the ``outbox`` and
``inbox`` tables; the migrations in ``app/alembic/versions`` build them all
(a change here needs a new revision: ``alembic revision --autogenerate``).
Engines and sessions (SQLite or PostgreSQL) come from :mod:`shopkit.db`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shopkit.cart import CartLineColumns
from shopkit.db import Base, BigId
from shopkit.wire import utcnow


class CartItem(CartLineColumns, Base):
    """The read model of carts, replicated from service A's cart-changes topic."""

    __tablename__ = "cart_items"
    __table_args__ = (Index("ix_cart_items_user", "user_id", "item_id"),)

    item_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


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


class RemovedCartItem(Base):
    """A cart line this service removed (a delete, or paid): the fact that
    service A's master may not know yet while B's events wait for the broker.
    With it, B answers a repeated delete 404 and an emptied cart EMPTY_CART
    without taking A's stale master for a lag of its own copy (app.replica).
    Kept inbox_retention_hours, far longer than any lag worth answering."""

    __tablename__ = "removed_cart_items"

    item_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger)
    removed_at: Mapped[datetime] = mapped_column(DateTime, index=True)
