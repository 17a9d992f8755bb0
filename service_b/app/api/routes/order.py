"""OrderService on B: paying carts and reading orders."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app import crud
from app.api.deps import OrderIdPath, PaymentsDep, ReadSessionDep
from app.models import OrderList, OrderPublic, PayRequest
from shopkit.auth import CallerDep
from shopkit.wire import INT64_MAX

router = APIRouter(prefix="/order", tags=["order"])


@router.get("", response_model=OrderList)
async def list_orders(
    session: ReadSessionDep, caller: CallerDep, user_id: Annotated[int, Query(gt=0, le=INT64_MAX, description="Buyer.")]
) -> OrderList:
    """ListOrders: a user's orders, newest first; 403 for another user's."""
    caller.check_user(user_id)
    return OrderList(orders=await crud.list_orders(session, user_id))


@router.get("/{order_id}", response_model=OrderPublic)
async def get_order(order_id: OrderIdPath, session: ReadSessionDep, caller: CallerDep) -> OrderPublic:
    """GetOrder: one order; another user's is 404, as if it did not exist."""
    return await crud.get_order(session, order_id, caller)


@router.post("/pay", response_model=OrderPublic)
async def pay_order(body: PayRequest, payments: PaymentsDep, caller: CallerDep) -> OrderPublic:
    """PayOrder: turn the user's whole cart into a PAID order; 403 for another user's."""
    caller.check_user(body.user_id)
    return await payments.pay(body.user_id)
