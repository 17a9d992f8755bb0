"""Service A's operations on its database. Each function runs in the caller's
session; the ones that change data open and commit their own transaction so
that the outbox event is written with the change."""

from __future__ import annotations

import json
import logging
from typing import cast

import sqlalchemy.exc
from sqlalchemy import BigInteger, DateTime, Integer, Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import CartItem, Reservation, Stock
from app.models import (
    CartItemCreate,
    CartItemPublic,
    ProcessStockRequest,
    ProcessStockResponse,
    StockCreate,
    StockLine,
    StockPublic,
    StockUpdate,
)
from app.settings import Settings
from shopkit import errors, idempotency
from shopkit.events import CART_ITEM_ADDED, CART_ITEM_REMOVED, ORDER_PAID, Event
from shopkit.kafka import add_cart_event
from shopkit.wire import INT64_MAX, utcnow

log = logging.getLogger(__name__)

SOURCE = "service-a"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


# Stock


def encode_page_token(after_product_id: int) -> str:
    """The token of the page after the given product id: that id in decimal digits.

    Every string of decimal digits is a place to continue from, so no token a
    client can form is refused once it has the documented form."""
    return str(after_product_id)


def decode_page_token(token: str) -> int:
    """The product id a page token continues after; INVALID_ARGUMENT when it is not decimal digits.

    A number past the largest id continues after every product: an empty page."""
    if not (token.isascii() and token.isdigit()):
        raise errors.invalid_argument("page_token must be a next_page_token: decimal digits", "query", "page_token")
    digits = token.lstrip("0")
    if len(digits) > len(str(INT64_MAX)):
        # Past every id; and int() refuses strings over 4,300 digits.
        return INT64_MAX
    return min(int(digits or "0"), INT64_MAX)


async def list_stock(session: AsyncSession, page_size: int, page_token: str) -> tuple[list[Stock], str]:
    """One page of stock items ordered by product id, and the next page's token ("" at the end)."""
    if page_size < 0:
        raise errors.invalid_argument("page_size must not be negative", "query", "page_size")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    after = decode_page_token(page_token) if page_token else 0
    rows = (
        (
            await session.execute(
                select(Stock).where(Stock.product_id > after).order_by(Stock.product_id).limit(size + 1)
            )
        )
        .scalars()
        .all()
    )
    items = list(rows[:size])
    next_token = encode_page_token(items[-1].product_id) if len(rows) > size else ""
    return items, next_token


# The hot paths in SQLAlchemy Core, compiled once and cached: no ORM unit of
# work, identity map or object loading per request.
_STOCK_COLUMNS = (Stock.product_id, Stock.product_name, Stock.quantity, Stock.price_cents)
_READ_STOCK = select(*_STOCK_COLUMNS).where(Stock.product_id == bindparam("product_id"))
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


async def read_stock(session: AsyncSession, product_id: int) -> StockPublic:
    """The stock item as the API shows it; NOT_FOUND when it does not exist."""
    # On the session's connection, not session.execute: a Core statement
    # needs none of the ORM's execution layer (compile state, loading).
    row = (await (await session.connection()).execute(_READ_STOCK, {"product_id": product_id})).first()
    if row is None:
        raise errors.not_found(f"product {product_id} not found", errors.REASON_UNKNOWN_PRODUCT)
    return StockPublic.model_validate(row._asdict())


async def get_stock(session: AsyncSession, product_id: int) -> Stock:
    """The stock item; NOT_FOUND when it does not exist."""
    item = await session.get(Stock, product_id)
    if item is None:
        raise errors.not_found(f"product {product_id} not found", errors.REASON_UNKNOWN_PRODUCT)
    return item


async def create_stock(session: AsyncSession, data: StockCreate) -> Stock:
    """Insert a stock item; ALREADY_EXISTS when the product id is taken."""
    item = Stock(**data.model_dump())
    try:
        async with session.begin():
            if await session.get(Stock, data.product_id) is not None:
                raise errors.already_exists(f"product {data.product_id} already exists")
            session.add(item)
            await session.flush()
            idempotency.answer(StockPublic.model_validate(item), 201)
    except sqlalchemy.exc.IntegrityError as exc:
        raise errors.already_exists(f"product {data.product_id} already exists") from exc
    return item


async def replace_stock(session: AsyncSession, product_id: int, data: StockUpdate) -> Stock:
    """Replace name, quantity and price of a product; NOT_FOUND when unknown."""
    if data.product_id not in (0, product_id):
        raise errors.invalid_argument(
            f"product_id in the body ({data.product_id}) differs from the one in the path ({product_id})",
            "body",
            "product_id",
        )
    async with session.begin():
        item = await get_stock(session, product_id)
        item.product_name = data.product_name
        item.quantity = data.quantity
        item.price_cents = data.price_cents
        idempotency.answer(StockPublic.model_validate(item))
    return item


async def delete_stock(session: AsyncSession, product_id: int) -> StockPublic:
    """Delete a product and return it as it was; NOT_FOUND when unknown.

    Cart lines that name it stay; paying them fails with FAILED_PRECONDITION."""
    async with session.begin():
        item = await get_stock(session, product_id)
        before = StockPublic.model_validate(item)
        await session.delete(item)
        idempotency.answer(before)
    return before


async def set_stock_level(session: AsyncSession, product_id: int, quantity: int) -> Stock:
    """Set the quantity on hand; NOT_FOUND when unknown."""
    async with session.begin():
        item = await get_stock(session, product_id)
        item.quantity = quantity
        idempotency.answer(StockPublic.model_validate(item))
    return item


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


# Order stock


async def process_stock(session: AsyncSession, request: ProcessStockRequest) -> list[StockPublic]:
    """Take the units of every line from stock in one transaction: all or nothing.

    Each line is a conditional ``UPDATE ... SET quantity = quantity - q WHERE
    quantity >= q``, so concurrent calls can never drive a quantity below zero;
    rows are updated in product id order so two calls cannot deadlock. With a
    reservation id the result is recorded, and a repeated call returns it.
    Unknown product: NOT_FOUND; not enough stock: FAILED_PRECONDITION."""
    for attempt in range(3):
        try:
            return await _process_stock_once(session, request)
        except sqlalchemy.exc.IntegrityError:
            # A concurrent call with the same reservation id won; read its result.
            if request.reservation_id is None or attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _process_stock_once(session: AsyncSession, request: ProcessStockRequest) -> list[StockPublic]:
    async with session.begin():
        if request.reservation_id is not None:
            previous = await session.get(Reservation, request.reservation_id)
            if previous is not None:
                if previous.state == "applied":
                    return [StockPublic.model_validate(i) for i in json.loads(previous.items)]
                raise errors.failed_precondition(
                    f"reservation {request.reservation_id} was released; use a new reservation id"
                )
        ids = [line.product_id for line in request.items]
        found = set((await session.execute(select(Stock.product_id).where(Stock.product_id.in_(ids)))).scalars())
        missing = [pid for pid in ids if pid not in found]
        if missing:
            raise errors.not_found(
                "product " + ", ".join(str(p) for p in missing) + " not found", errors.REASON_UNKNOWN_PRODUCT
            )
        after: dict[int, StockPublic] = {}
        for line in sorted(request.items, key=lambda line: line.product_id):
            row = (
                await session.execute(
                    update(Stock)
                    .where(Stock.product_id == line.product_id, Stock.quantity >= line.quantity)
                    .values(quantity=Stock.quantity - line.quantity)
                    .returning(Stock.product_id, Stock.product_name, Stock.quantity, Stock.price_cents)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if row is None:
                on_hand = (
                    await session.execute(select(Stock.quantity).where(Stock.product_id == line.product_id))
                ).scalar_one_or_none()
                if on_hand is None:
                    raise errors.not_found(f"product {line.product_id} not found", errors.REASON_UNKNOWN_PRODUCT)
                raise errors.failed_precondition(
                    f"not enough stock for product {line.product_id}: {on_hand} on hand, {line.quantity} requested",
                    errors.REASON_OUT_OF_STOCK,
                )
            after[line.product_id] = StockPublic.model_validate(dict(row._mapping))
        items = [after[line.product_id] for line in request.items]
        if request.reservation_id is not None:
            session.add(
                Reservation(
                    reservation_id=request.reservation_id,
                    state="applied",
                    lines=json.dumps([line.model_dump() for line in request.items]),
                    items=json.dumps([i.model_dump() for i in items]),
                )
            )
            await session.flush()
        idempotency.answer(ProcessStockResponse(items=items))
    return items


async def release_stock(session: AsyncSession, reservation_id: str) -> tuple[bool, list[StockLine]]:
    """Give back the units taken under reservation_id, once.

    Returns (True, lines) when this call gave them back. When the reservation
    is unknown it is recorded as released, so that a process_stock call with
    it that arrives late (a timed-out request) fails instead of taking stock.
    Units of a product deleted meanwhile are dropped."""
    for attempt in range(3):
        try:
            async with session.begin():
                res = await session.execute(
                    select(Reservation).where(Reservation.reservation_id == reservation_id).with_for_update()
                )
                reservation = res.scalar_one_or_none()
                if reservation is None:
                    session.add(Reservation(reservation_id=reservation_id, state="released", lines="[]", items="[]"))
                    await session.flush()
                    return False, []
                lines = [StockLine.model_validate(x) for x in json.loads(reservation.lines)]
                if reservation.state == "released":
                    return False, lines
                for line in sorted(lines, key=lambda line: line.product_id):
                    await session.execute(
                        update(Stock)
                        .where(Stock.product_id == line.product_id)
                        .values(quantity=Stock.quantity + line.quantity)
                        .execution_options(synchronize_session=False)
                    )
                reservation.state = "released"
                reservation.updated_at = utcnow()
            log.info("released reservation %s: %s", reservation_id, [line.model_dump() for line in lines])
            return True, lines
        except sqlalchemy.exc.IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


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
