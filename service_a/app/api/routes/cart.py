"""CartService on A: add to cart (the master copy) and the fallback cart."""

from __future__ import annotations

from fastapi import APIRouter, status

from app import carts
from app.api.deps import BridgeDep, ReadSessionDep, SessionDep, SettingsDep, UserIdPath
from app.db import CartItem
from app.models import CartItemCreate, CartItemPublic, CartPublic, FallbackCartRequest
from shopkit.auth import CallerDep
from shopkit.cart import read_cart

router = APIRouter(prefix="/cart", tags=["cart"])


@router.post("/add", response_model=CartItemPublic, status_code=status.HTTP_201_CREATED)
async def add_cart_item(
    body: CartItemCreate, session: SessionDep, settings: SettingsDep, bridge: BridgeDep, caller: CallerDep
) -> CartItemPublic:
    """AddCartItem: check the stock, add a line to the master cart and publish
    it; 403 for another user's cart."""
    caller.check_user(body.user_id)
    item = await carts.add_cart_item(session, settings, body)
    bridge.wake()
    return item


async def _cart(session: ReadSessionDep, caller: CallerDep, user_id: int) -> CartPublic:
    caller.check_user(user_id)
    return await read_cart(session, CartItem, user_id)


@router.post("/fallback", response_model=CartPublic)
async def fallback_cart(body: FallbackCartRequest, session: ReadSessionDep, caller: CallerDep) -> CartPublic:
    """GetFallbackCart: a user's cart from the master copy; 403 for another user's."""
    return await _cart(session, caller, body.user_id)


@router.get("/fallback/{user_id}", response_model=CartPublic)
async def fallback_cart_get(user_id: UserIdPath, session: ReadSessionDep, caller: CallerDep) -> CartPublic:
    """GetFallbackCart (GET binding)."""
    return await _cart(session, caller, user_id)
