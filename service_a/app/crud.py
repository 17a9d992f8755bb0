"""Service A's stock: listing, reading and changing products. Each function
runs in the caller's session; the ones that change data open and commit their
own transaction. The master carts are in :mod:`app.carts`, the stock taken
and released for payments in :mod:`app.reservations`."""

from __future__ import annotations

import logging

import sqlalchemy.exc
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Stock
from app.models import StockCreate, StockPublic, StockUpdate
from shopkit import errors, idempotency
from shopkit.wire import INT64_MAX

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
