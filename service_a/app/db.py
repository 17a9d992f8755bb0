"""Storage of service A: its tables.

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


class Stock(Base):
    """A product, its quantity on hand and its price."""

    __tablename__ = "stock"

    product_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    product_name: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(Integer)
    price_cents: Mapped[int] = mapped_column(BigInteger)


class CartItem(CartLineColumns, Base):
    """One line of a user's cart: the master copy of carts."""

    __tablename__ = "cart_items"
    # sqlite_autoincrement: never reuse the id of a deleted line, since B and
    # the events refer to lines by id.
    __table_args__ = (Index("ix_cart_items_user", "user_id", "item_id"), {"sqlite_autoincrement": True})

    item_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class Reservation(Base):
    """A stock decrement made under a client's reservation id.

    state is "applied" (units taken; items and lines hold the answer and what
    to give back) or "released" (given back, or blocked before it was applied)."""

    __tablename__ = "stock_reservations"

    reservation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    lines: Mapped[str] = mapped_column(Text)
    items: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
