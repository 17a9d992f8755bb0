"""Service B's operations on its database: the cart read model and orders."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import CartItem, Checkout, Order, OrderItem, RemovedCartItem
from app.models import CartItemPublic, OrderItemPublic, OrderPublic
from app.settings import Settings
from shopkit import errors, idempotency
from shopkit.auth import Caller
from shopkit.events import CART_ITEM_ADDED, CART_ITEM_REMOVED, Event
from shopkit.kafka import add_cart_event
from shopkit.wire import utcnow

log = logging.getLogger(__name__)

SOURCE = "service-b"


# Cart read model


class NotInCopy(Exception):
    """The cart item is not in B's copy of the carts: whether it exists is
    for A's master to say (see app.replica)."""


async def remove_cart_item(session: AsyncSession, settings: Settings, item_id: int, caller: Caller) -> CartItemPublic:
    """Remove a line from the read model and publish the removal so that
    service A removes it from the master copy too. NOT_FOUND when not the
    caller's to change; NotInCopy when the copy lacks it; FAILED_PRECONDITION
    while the user's cart is being paid."""
    async with session.begin():
        item = await session.get(CartItem, item_id)
        if item is None and await session.get(RemovedCartItem, item_id) is not None:
            raise errors.not_found(f"cart item {item_id} not found")  # removed here: A may not know yet
        if item is None:
            raise NotInCopy(item_id)
        if not caller.may_act_for(item.user_id):
            raise errors.not_found(f"cart item {item_id} not found")
        busy = (await session.execute(select(Checkout.reservation_id).where(Checkout.user_id == item.user_id))).first()
        if busy is not None:
            raise errors.failed_precondition(
                f"the cart of user {item.user_id} is being paid; try again when the payment is done"
            )
        removed = CartItemPublic.model_validate(item)
        await session.delete(item)
        session.add(RemovedCartItem(item_id=item.item_id, user_id=item.user_id, removed_at=utcnow()))
        add_cart_event(session, source=SOURCE, topic=settings.order_events_topic, type_=CART_ITEM_REMOVED, item=removed)
        idempotency.answer(removed)
    return removed


async def apply_cart_event(session: AsyncSession, event: Event) -> None:
    """Apply one event of A's cart-changes topic to the read model.

    ``cart.item_added`` upserts the line by item id; ``cart.item_removed``
    deletes it (no-op when already gone). Other types are ignored."""
    type_, data = event.type, event.data
    if type_ == CART_ITEM_ADDED:
        item = CartItemPublic.model_validate(data["item"])
        if await session.get(RemovedCartItem, item.item_id) is not None:
            return  # removed here already; never brought back
        row = await session.get(CartItem, item.item_id)
        if row is None:
            session.add(CartItem(**item.model_dump()))
        else:
            row.user_id, row.product_id = item.user_id, item.product_id
            row.quantity, row.added_at = item.quantity, item.added_at
    elif type_ == CART_ITEM_REMOVED:
        item = CartItemPublic.model_validate(data["item"])
        await session.execute(delete(CartItem).where(CartItem.item_id == item.item_id))
    else:
        log.info("ignoring event type %s", type_)


# Orders


async def _public_orders(session: AsyncSession, orders: list[Order]) -> list[OrderPublic]:
    if not orders:
        return []
    lines = (
        (
            await session.execute(
                select(OrderItem)
                .where(OrderItem.order_id.in_([o.order_id for o in orders]))
                .order_by(OrderItem.order_id, OrderItem.position)
            )
        )
        .scalars()
        .all()
    )
    by_order: dict[int, list[OrderItemPublic]] = {}
    for line in lines:
        by_order.setdefault(line.order_id, []).append(OrderItemPublic.model_validate(line))
    return [public_order(o, by_order.get(o.order_id, [])) for o in orders]


def public_order(order: Order, items: list[OrderItemPublic]) -> OrderPublic:
    """The wire form of an order."""
    return OrderPublic(
        order_id=order.order_id,
        user_id=order.user_id,
        items=items,
        total_cents=order.total_cents,
        status=order.status,
        created_at=order.created_at,
    )


async def list_orders(session: AsyncSession, user_id: int) -> list[OrderPublic]:
    """A user's orders, newest first."""
    orders = (
        (
            await session.execute(
                select(Order).where(Order.user_id == user_id).order_by(Order.created_at.desc(), Order.order_id.desc())
            )
        )
        .scalars()
        .all()
    )
    return await _public_orders(session, list(orders))


async def get_order(session: AsyncSession, order_id: int, caller: Caller) -> OrderPublic:
    """One order; NOT_FOUND when unknown or not the caller's to see."""
    order = await session.get(Order, order_id)
    if order is None or not caller.may_act_for(order.user_id):
        raise errors.not_found(f"order {order_id} not found")
    return (await _public_orders(session, [order]))[0]


async def removed_here(session: AsyncSession, item_ids: list[int]) -> set[int]:
    """Which of item_ids this service removed (RemovedCartItem)."""
    if not item_ids:
        return set()
    rows = await session.execute(select(RemovedCartItem.item_id).where(RemovedCartItem.item_id.in_(item_ids)))
    return set(rows.scalars())


async def prune_removed(session: AsyncSession, older_than: timedelta) -> int:
    """Forget removals older than older_than; returns how many."""
    result = await session.execute(delete(RemovedCartItem).where(RemovedCartItem.removed_at < utcnow() - older_than))
    return int(getattr(result, "rowcount", 0) or 0)
