"""CartService on B: the cart read model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app import crud, replica
from app.api.deps import BridgeDep, ItemIdPath, PaymentsDep, ReadSessionDep, SessionDep, SettingsDep, UserIdPath
from app.db import CartItem
from app.models import CartItemPublic, CartPublic
from shopkit.auth import CallerDep
from shopkit.cart import read_cart
from shopkit.wire import INT64_MAX

router = APIRouter(prefix="/cart", tags=["cart"])


async def _cart(session: ReadSessionDep, caller: CallerDep, user_id: int) -> CartPublic:
    caller.check_user(user_id)
    return await read_cart(session, CartItem, user_id)


@router.get("", response_model=CartPublic)
async def get_cart(
    session: ReadSessionDep,
    caller: CallerDep,
    user_id: Annotated[int, Query(gt=0, le=INT64_MAX, description="Owner of the cart.")],
) -> CartPublic:
    """GetCart: a user's cart from the read model; 403 for another user's."""
    return await _cart(session, caller, user_id)


@router.get("/{user_id}", response_model=CartPublic)
async def get_cart_by_path(user_id: UserIdPath, session: ReadSessionDep, caller: CallerDep) -> CartPublic:
    """GetCart (path binding)."""
    return await _cart(session, caller, user_id)


@router.delete("/{item_id}", response_model=CartItemPublic)
async def remove_cart_item(
    item_id: ItemIdPath,
    session: SessionDep,
    settings: SettingsDep,
    bridge: BridgeDep,
    caller: CallerDep,
    payments: PaymentsDep,
) -> CartItemPublic:
    """RemoveCartItem: remove a line and return it; A's master copy follows via
    Kafka. Another user's line is 404, as if it did not exist; a line this
    copy lacks is 404 only when A's master lacks it too (else 503, retry)."""
    try:
        item = await crud.remove_cart_item(session, settings, item_id, caller)
    except crud.NotInCopy:
        raise await replica.missing_item(payments.stock, item_id, caller) from None
    bridge.wake()
    return item
