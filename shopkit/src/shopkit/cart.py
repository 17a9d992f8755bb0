"""The cart line both services store (A its master copy, B its read model)
and the one query that reads a user's cart from either."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import Select, select

from shopkit.wire import CartItemPublic, CartPublic


class CartLineColumns:
    """The columns of a cart line, mixed into each service's ``cart_items``
    table. The table declares ``item_id`` itself: A assigns the ids, B copies
    them from A's events."""

    user_id: Mapped[int] = mapped_column(BigInteger)
    product_id: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(DateTime)


def cart_query(table: Any, user_id: int) -> Select[Any]:
    """The lines of user_id's cart in table (a CartLineColumns table), oldest first."""
    return select(table).where(table.user_id == user_id).order_by(table.added_at, table.item_id)


async def cart_lines(session: AsyncSession, table: Any, user_id: int) -> list[Any]:
    """The rows of cart_query."""
    return list((await session.execute(cart_query(table, user_id))).scalars().all())


async def read_cart(session: AsyncSession, table: Any, user_id: int) -> CartPublic:
    """user_id's cart in its wire form."""
    items = await cart_lines(session, table, user_id)
    return CartPublic(user_id=user_id, items=[CartItemPublic.model_validate(i) for i in items])
