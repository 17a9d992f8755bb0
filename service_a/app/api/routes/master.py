"""Internal reads of the master cart, for service B: whether B's copy of a
cart lags the master (its consumer behind, the broker down) before B
answers "not found" or "empty". Services only (``shop:service``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select

from app.api.deps import ReadSessionDep, UserIdPath
from app.db import CartItem
from app.models import MasterCartIds, MasterItem
from shopkit import errors
from shopkit.auth import require_service
from shopkit.deps import ItemIdPath

router = APIRouter(
    prefix="/internal/master-cart", tags=["internal"], dependencies=[Depends(require_service)], include_in_schema=False
)


@router.get("/items/{item_id}", response_model=MasterItem)
async def master_item(item_id: ItemIdPath, session: ReadSessionDep) -> MasterItem:
    """The owner of a line of the master cart; NOT_FOUND when there is none."""
    owner = (await session.execute(select(CartItem.user_id).where(CartItem.item_id == item_id))).scalar_one_or_none()
    if owner is None:
        raise errors.not_found(f"cart item {item_id} not in the master cart")
    return MasterItem(item_id=item_id, user_id=owner)


@router.get("/users/{user_id}", response_model=MasterCartIds)
async def master_cart_ids(user_id: UserIdPath, session: ReadSessionDep) -> MasterCartIds:
    """The ids of a user's lines in the master cart (empty when none)."""
    rows = await session.execute(select(CartItem.item_id).where(CartItem.user_id == user_id).order_by(CartItem.item_id))
    return MasterCartIds(user_id=user_id, item_ids=list(rows.scalars()))
