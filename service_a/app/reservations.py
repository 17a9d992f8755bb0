"""The stock a payment takes from service A and gives back: process_stock
takes every line or none and records the result under the reservation id;
release_stock undoes a reservation (or blocks one never applied)."""

from __future__ import annotations

import json
import logging

import sqlalchemy.exc
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Reservation, Stock
from app.models import ProcessStockRequest, ProcessStockResponse, StockLine, StockPublic
from shopkit import errors, idempotency
from shopkit.wire import utcnow

log = logging.getLogger(__name__)


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
