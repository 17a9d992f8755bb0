"""Where facts stand: B's carts are a copy of A's master carts, built from
A's events on Kafka, so they lag the master while the broker is down or the
consumer behind. B never answers "not found" or "empty" from that copy
alone: before it does, it asks A's master (an internal read) and, when the
master holds what B lacks, or A cannot say, answers 503 UNAVAILABLE with
Retry-After instead. Nothing is changed in either case, so the client's
retry, once the copy has caught up, is applied once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from shopkit import errors
from shopkit.auth import Caller

log = logging.getLogger(__name__)

LAGGING = "this service's copy of the cart is behind service A's; nothing was changed, try again"
UNCONFIRMED = "service A cannot confirm the cart right now; nothing was changed, try again"


class MasterUnknown(Exception):
    """A could not say what its master cart holds."""


class Master(Protocol):
    """Reads of A's master cart (app.stock_client.StockClient)."""

    async def master_owner(self, item_id: int) -> int | None:
        """The owner of item_id in the master cart, None when there is no such line."""
        ...

    async def master_item_ids(self, user_id: int) -> list[int]:
        """The ids of user_id's lines in the master cart."""
        ...


async def missing_item(master: Master, item_id: int, caller: Caller) -> errors.ApiError:
    """The error for a cart item that B's copy lacks: NOT_FOUND when A's
    master lacks it too (or it is not the caller's), UNAVAILABLE when the
    master has it for the caller or A cannot say."""
    try:
        owner = await master.master_owner(item_id)
    except MasterUnknown as exc:
        log.warning("cart item %s not in the copy and %s", item_id, exc)
        return errors.unavailable(UNCONFIRMED)
    if owner is not None and caller.may_act_for(owner):
        log.info("cart item %s is in A's master cart but not in the copy yet: 503", item_id)
        return errors.unavailable(LAGGING)
    return errors.not_found(f"cart item {item_id} not found")


async def empty_cart(
    master: Master, user_id: int, removed_here: Callable[[list[int]], Awaitable[set[int]]]
) -> errors.ApiError:
    """The error for a payment of a cart that B's copy has empty:
    FAILED_PRECONDITION EMPTY_CART when A's master is empty too, or holds
    only lines B itself removed (removed_here: a delete or a payment whose
    event A has not processed yet); UNAVAILABLE when it holds others or A
    cannot say."""
    try:
        ids = await master.master_item_ids(user_id)
    except MasterUnknown as exc:
        log.warning("the cart of user %s is empty in the copy and %s", user_id, exc)
        return errors.unavailable(UNCONFIRMED)
    ids = sorted(set(ids) - await removed_here(ids))
    if ids:
        log.info("the cart of user %s is empty in the copy but has %d line(s) at A: 503", user_id, len(ids))
        return errors.unavailable(LAGGING)
    return errors.failed_precondition(f"the cart of user {user_id} is empty", errors.REASON_EMPTY_CART)
