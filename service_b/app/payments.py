"""Paying a cart: B's read model, A's stock and B's orders kept consistent.

A payment takes three steps, and no failure leaves a half-written result:

1. Claim: in one transaction read the user's cart and insert a ``checkouts``
   row (unique per user, so two payments of one cart cannot overlap) that
   names a fresh reservation id.
2. Take stock: ``POST /order/process_stock`` on A with the lines and the
   reservation id. A applies it all or nothing and records the reservation,
   so a repeated call is harmless and ``POST /order/release_stock`` can undo it.
3. Record: in one transaction delete the checkout (it must still be there),
   insert the PAID order, delete the paid cart lines and queue ``order.paid``
   in the outbox.

Failures are compensated:

- A refused (not enough stock, unknown product) or could not be reached
  (connection refused): nothing was taken; the checkout is deleted.
- A's answer is unknown (timeout, 5xx) or step 3 failed: the checkout is
  replaced by a ``stock_releases`` row in one transaction and A is asked to
  release the reservation, now and then by a background task until A confirms.
  Releasing a reservation A never applied blocks it, so a late request cannot
  take stock afterwards.
- The process dies between steps 1 and 3: the checkout row stays; once older
  than ``checkout_timeout_seconds`` the background task turns it into a release.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

import sqlalchemy.exc
from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import replica
from app.crud import SOURCE, prune_removed, public_order, removed_here
from app.db import CartItem, Checkout, Order, OrderItem, RemovedCartItem, StockRelease
from app.models import (
    ORDER_STATUS_PAID,
    OrderItemPublic,
    OrderPublic,
    StockItem,
    StockLine,
)
from app.settings import Settings
from app.stock_client import StockClient, StockOutcomeUnknown, StockRefused, StockUnreachable
from shopkit import errors, idempotency
from shopkit.cart import cart_lines
from shopkit.events import ORDER_PAID
from shopkit.kafka import KafkaBridge, add_event
from shopkit.wire import utcnow

log = logging.getLogger(__name__)


def aggregate(items: Sequence[CartItem]) -> list[StockLine]:
    """One stock line per product (a cart may hold a product in several lines),
    in the order the products first appear in the cart."""
    totals: dict[int, int] = {}
    for item in items:
        totals[item.product_id] = totals.get(item.product_id, 0) + item.quantity
    return [StockLine(product_id=pid, quantity=qty) for pid, qty in totals.items()]


class Payments:
    """Pays carts and runs the background task that gives back stock of
    payments that failed half-way."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        stock: StockClient,
        bridge: KafkaBridge,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._stock = stock
        self._pruned_at = float("-inf")
        self._bridge = bridge
        self._task: asyncio.Task[None] | None = None

    @property
    def stock(self) -> StockClient:
        """The client of service A."""
        return self._stock

    async def start(self) -> None:
        """Start the release task."""
        self._task = asyncio.create_task(self._release_loop(), name="stock-release")

    async def stop(self) -> None:
        """Stop the release task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def pay(self, user_id: int) -> OrderPublic:
        """Turn the user's whole cart into a PAID order (see the module doc)."""
        reservation_id = f"pay-{uuid.uuid4().hex}"
        try:
            items = await self._claim(user_id, reservation_id)
        except errors.ApiError as exc:
            if exc.reason != errors.REASON_EMPTY_CART:
                raise
            # Empty here; is it empty at A's master too? (app.replica)
            raise await replica.empty_cart(self._stock, user_id, self._removed_here) from None
        lines = aggregate(items)
        try:
            stock = await self._stock.process_stock(lines, reservation_id)
        except StockUnreachable as exc:
            log.warning("pay user %s: %s", user_id, exc)
            await self._abandon(reservation_id, release=False)
            raise errors.unavailable("service A (stock) is unavailable; nothing was charged, try again") from exc
        except StockRefused as exc:
            await self._abandon(reservation_id, release=False)
            raise errors.failed_precondition(
                f"cannot pay the cart of user {user_id}: {exc.message}", exc.reason
            ) from exc
        except BaseException as exc:
            log.warning("pay user %s: %s; giving back reservation %s", user_id, exc, reservation_id)
            await self._abandon(reservation_id, release=True)
            if isinstance(exc, StockOutcomeUnknown):
                raise errors.unavailable(
                    "service A (stock) did not answer in time; nothing was charged, try again"
                ) from exc
            raise
        try:
            order = await self._record(user_id, reservation_id, items, lines, stock)
        except BaseException:
            log.exception(
                "pay user %s: recording the order failed; giving back reservation %s", user_id, reservation_id
            )
            await self._abandon(reservation_id, release=True)
            raise
        self._bridge.wake()
        log.info("order %s paid by user %s: %d cents", order.order_id, user_id, order.total_cents)
        return order

    async def _claim(self, user_id: int, reservation_id: str) -> list[CartItem]:
        busy = errors.failed_precondition(f"a payment of the cart of user {user_id} is already in progress")
        try:
            async with self._sessions() as session, session.begin():
                items = await cart_lines(session, CartItem, user_id)
                if not items:
                    raise errors.failed_precondition(f"the cart of user {user_id} is empty", errors.REASON_EMPTY_CART)
                if (await session.execute(select(Checkout.reservation_id).where(Checkout.user_id == user_id))).first():
                    raise busy
                session.add(
                    Checkout(
                        reservation_id=reservation_id,
                        user_id=user_id,
                        item_ids=json.dumps([i.item_id for i in items]),
                        started_at=utcnow(),
                    )
                )
                await session.flush()
        except sqlalchemy.exc.IntegrityError as exc:
            raise busy from exc
        return items

    async def _record(
        self,
        user_id: int,
        reservation_id: str,
        items: Sequence[CartItem],
        lines: Sequence[StockLine],
        stock: Sequence[StockItem],
    ) -> OrderPublic:
        order_items = [
            OrderItemPublic(product_id=line.product_id, quantity=line.quantity, price_cents=s.price_cents)
            for line, s in zip(lines, stock, strict=True)
        ]
        async with self._sessions() as session, session.begin():
            # A DELETE's result is a CursorResult, which has the row count.
            gone = cast(
                CursorResult[Any],
                await session.execute(delete(Checkout).where(Checkout.reservation_id == reservation_id)),
            )
            if gone.rowcount != 1:
                # The release task took this payment for dead and gives the stock back.
                raise errors.unavailable("the payment took too long and was cancelled; try again")
            order = Order(
                user_id=user_id,
                status=ORDER_STATUS_PAID,
                total_cents=sum(i.quantity * i.price_cents for i in order_items),
                created_at=utcnow(),
                reservation_id=reservation_id,
            )
            session.add(order)
            await session.flush()
            for position, line in enumerate(order_items):
                session.add(OrderItem(order_id=order.order_id, position=position, **line.model_dump()))
            item_ids = [i.item_id for i in items]
            await session.execute(delete(CartItem).where(CartItem.item_id.in_(item_ids)))
            now = utcnow()
            session.add_all(RemovedCartItem(item_id=i.item_id, user_id=user_id, removed_at=now) for i in items)
            public = public_order(order, order_items)
            add_event(
                session,
                source=SOURCE,
                topic=self._settings.order_events_topic,
                key=user_id,
                type_=ORDER_PAID,
                data={"order": public.model_dump(mode="json"), "item_ids": item_ids, "reservation_id": reservation_id},
                subject=public.order_id,
            )
            idempotency.answer(public)
        return public

    async def _abandon(self, reservation_id: str, *, release: bool) -> None:
        """Drop the checkout; with release, queue the reservation to be given
        back and try to give it back now. Never raises: on failure the stale
        checkout is picked up by the release task later."""
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(delete(Checkout).where(Checkout.reservation_id == reservation_id))
                if release and await session.get(StockRelease, reservation_id) is None:
                    session.add(
                        StockRelease(reservation_id=reservation_id, created_at=utcnow(), attempts=0, last_error="")
                    )
        except Exception:
            log.exception("could not drop checkout %s; the release task will retry it", reservation_id)
            return
        if release:
            await self._release_pending(only=reservation_id)

    async def _release_pending(self, only: str | None = None) -> None:
        """Ask A to give back queued reservations; stop at the first failure."""
        async with self._sessions() as session:
            query = select(StockRelease).order_by(StockRelease.created_at).limit(50)
            if only is not None:
                query = query.where(StockRelease.reservation_id == only)
            pending = list((await session.execute(query)).scalars().all())
        for row in pending:
            try:
                released = await self._stock.release_stock(row.reservation_id)
            except Exception as exc:
                log.warning("release of reservation %s failed (%r); will retry", row.reservation_id, exc)
                async with self._sessions() as session, session.begin():
                    current = await session.get(StockRelease, row.reservation_id)
                    if current is not None:
                        current.attempts += 1
                        current.last_error = repr(exc)[:500]
                return
            async with self._sessions() as session, session.begin():
                await session.execute(delete(StockRelease).where(StockRelease.reservation_id == row.reservation_id))
            log.info(
                "reservation %s given back to service A (%s)",
                row.reservation_id,
                "released" if released else "nothing taken",
            )

    async def _expire_checkouts(self) -> None:
        """Turn checkouts older than checkout_timeout_seconds into releases."""
        cutoff = utcnow() - timedelta(seconds=self._settings.checkout_timeout_seconds)
        async with self._sessions() as session, session.begin():
            stale = (
                await session.execute(
                    select(Checkout.reservation_id, Checkout.user_id).where(Checkout.started_at < cutoff)
                )
            ).all()
            for checkout in stale:
                gone = cast(
                    CursorResult[Any],
                    await session.execute(delete(Checkout).where(Checkout.reservation_id == checkout.reservation_id)),
                )
                if gone.rowcount != 1:
                    continue  # finished or expired by someone else meanwhile
                log.warning(
                    "payment %s of user %s never finished; giving its stock back",
                    checkout.reservation_id,
                    checkout.user_id,
                )
                if await session.get(StockRelease, checkout.reservation_id) is None:
                    session.add(
                        StockRelease(
                            reservation_id=checkout.reservation_id, created_at=utcnow(), attempts=0, last_error=""
                        )
                    )

    async def _removed_here(self, item_ids: list[int]) -> set[int]:
        async with self._sessions() as session:
            return await removed_here(session, item_ids)

    async def _prune_removed(self) -> None:
        """Forget removed cart lines once no lag could still need them, at
        most every 10 minutes."""
        now = time.monotonic()
        if now - self._pruned_at < 600:
            return
        self._pruned_at = now
        async with self._sessions() as session, session.begin():
            gone = await prune_removed(session, timedelta(hours=self._settings.inbox_retention_hours))
        if gone:
            log.info("forgot %d removed cart lines", gone)

    async def _release_loop(self) -> None:
        while True:
            try:
                await self._expire_checkouts()
                await self._release_pending()
                await self._prune_removed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stock release task failed (%r); will retry", exc)
            await asyncio.sleep(self._settings.release_retry_seconds)
