"""CartService on A: add to cart (the master copy) and the fallback cart."""

from __future__ import annotations

from fastapi import APIRouter, status

from app import crud
from app.api.deps import BridgeDep, SessionDep, SettingsDep, UserIdPath
from app.models import CartItemCreate, CartItemPublic, CartPublic, FallbackCartRequest

router = APIRouter(prefix="/cart", tags=["cart"])


@router.post("/add", response_model=CartItemPublic, status_code=status.HTTP_201_CREATED)
async def add_cart_item(
    body: CartItemCreate, session: SessionDep, settings: SettingsDep, bridge: BridgeDep
) -> CartItemPublic:
    """AddCartItem: check the stock, add a line to the master cart and publish it."""
    item = await crud.add_cart_item(session, settings, body)
    bridge.wake()
    return CartItemPublic.model_validate(item)


async def _cart(session: SessionDep, user_id: int) -> CartPublic:
    items = await crud.get_cart(session, user_id)
    return CartPublic(user_id=user_id, items=[CartItemPublic.model_validate(i) for i in items])


@router.post("/fallback", response_model=CartPublic)
async def fallback_cart(body: FallbackCartRequest, session: SessionDep) -> CartPublic:
    """GetFallbackCart: a user's cart from the master copy."""
    return await _cart(session, body.user_id)


@router.get("/fallback/{user_id}", response_model=CartPublic)
async def fallback_cart_get(user_id: UserIdPath, session: SessionDep) -> CartPublic:
    """GetFallbackCart (GET binding)."""
    return await _cart(session, user_id)
