"""Service A's master copy of the carts: adding a line (checked against the
stock in the same statement), removing lines, and applying service B's order
events to them. Every change queues its cart event in the same transaction."""

from __future__ import annotations

import logging
from typing import cast

from sqlalchemy import BigInteger, DateTime, Integer, Table, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crud import SOURCE
from app.db import CartItem, Stock
from app.models import CartItemCreate, CartItemPublic
from app.settings import Settings
from shopkit import errors, idempotency
from shopkit.events import CART_ITEM_ADDED, CART_ITEM_REMOVED, ORDER_PAID, Event
from shopkit.kafka import add_cart_event
from shopkit.wire import utcnow

log = logging.getLogger(__name__)

_QUANTITY = select(Stock.quantity).where(Stock.product_id == bindparam("product_id"))
# One statement checks the stock and adds the line: a product that is
# missing or short inserts nothing.
_LINES = cast(Table, CartItem.__table__)
_ADD_LINE = (
    insert(_LINES)
    .from_select(
        [_LINES.c.user_id, _LINES.c.product_id, _LINES.c.quantity, _LINES.c.added_at],
        select(
            bindparam("user_id", type_=BigInteger),
            Stock.product_id,
            bindparam("quantity", type_=Integer),
            bindparam("added_at", type_=DateTime),
        ).where(Stock.product_id == bindparam("product_id"), Stock.quantity >= bindparam("quantity")),
    )
    .returning(_LINES.c.item_id)
)


# Cart (master copy)


async def add_cart_item(session: AsyncSession, settings: Settings, data: CartItemCreate) -> CartItemPublic:
    """Add a line to a user's cart after checking the stock, and publish it.

    Every call makes a new line with a new item id; stock is not decremented.
    The check and the insert are one statement; only a refusal asks again
    to say why."""
    added_at = utcnow()
    async with session.begin():
        params = {
            "user_id": data.user_id,
            "product_id": data.product_id,
            "quantity": data.quantity,
            "added_at": added_at,
        }
        item_id = (await session.execute(_ADD_LINE, params)).scalar_one_or_none()
        if item_id is None:
            on_hand = (await session.execute(_QUANTITY, {"product_id": data.product_id})).scalar_one_or_none()
            if on_hand is None:
                raise errors.not_found(f"product {data.product_id} not found", errors.REASON_UNKNOWN_PRODUCT)
            raise errors.failed_precondition(
                f"not enough stock for product {data.product_id}: {on_hand} on hand, {data.quantity} requested",
                errors.REASON_OUT_OF_STOCK,
            )
        item = CartItemPublic(
            item_id=item_id,
            user_id=data.user_id,
            product_id=data.product_id,
            quantity=data.quantity,
            added_at=added_at,
        )
        add_cart_event(session, source=SOURCE, topic=settings.cart_changes_topic, type_=CART_ITEM_ADDED, item=item)
        idempotency.answer(item, 201)
    return item


async def remove_cart_items(
    session: AsyncSession, settings: Settings, item_ids: list[int], user_id: int | None, reason: str
) -> list[CartItem]:
    """Delete cart lines in the caller's transaction and publish each removal.

    Ids that are already gone are skipped, so applying a removal twice changes nothing."""
    if not item_ids:
        return []
    query = select(CartItem).where(CartItem.item_id.in_(item_ids))
    if user_id is not None:
        query = query.where(CartItem.user_id == user_id)
    items = list((await session.execute(query)).scalars().all())
    if not items:
        return []
    await session.execute(delete(CartItem).where(CartItem.item_id.in_([i.item_id for i in items])))
    for item in items:
        add_cart_event(
            session,
            source=SOURCE,
            topic=settings.cart_changes_topic,
            type_=CART_ITEM_REMOVED,
            item=CartItemPublic.model_validate(item),
            reason=reason,
        )
    return items


# Events from service B


async def apply_order_event(session: AsyncSession, settings: Settings, event: Event) -> None:
    """Apply one event of B's order-events topic to the master carts.

    ``order.paid`` removes the cart lines the order was made of (only those:
    lines added after B took the cart stay); ``cart.item_removed`` removes one
    line. Both publish the removals on the cart-changes topic."""
    type_, data = event.type, event.data
    if type_ == ORDER_PAID:
        order = data["order"]
        item_ids = [int(i) for i in data.get("item_ids", [])]
        removed = await remove_cart_items(session, settings, item_ids, int(order["user_id"]), "order_paid")
        log.info(
            "order %s paid: removed %d of %d cart items of user %s",
            order.get("order_id"),
            len(removed),
            len(item_ids),
            order["user_id"],
        )
    elif type_ == CART_ITEM_REMOVED:
        item = data["item"]
        removed = await remove_cart_items(session, settings, [int(item["item_id"])], None, "removed")
        log.info("cart item %s removed by service B (%s)", item["item_id"], "applied" if removed else "already gone")
    else:
        log.info("ignoring event type %s", type_)
