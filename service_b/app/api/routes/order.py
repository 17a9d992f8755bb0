"""OrderService on B: paying carts and reading orders."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app import crud
from app.api.deps import OrderIdPath, PaymentsDep, SessionDep
from app.models import OrderList, OrderPublic, PayRequest
from shopkit.wire import INT64_MAX

router = APIRouter(prefix="/order", tags=["order"])


@router.get("", response_model=OrderList)
async def list_orders(
    session: SessionDep, user_id: Annotated[int, Query(gt=0, le=INT64_MAX, description="Buyer.")]
) -> OrderList:
    """ListOrders: a user's orders, newest first."""
    return OrderList(orders=await crud.list_orders(session, user_id))


@router.get("/{order_id}", response_model=OrderPublic)
async def get_order(order_id: OrderIdPath, session: SessionDep) -> OrderPublic:
    """GetOrder: one order."""
    return await crud.get_order(session, order_id)


@router.post("/pay", response_model=OrderPublic)
async def pay_order(body: PayRequest, payments: PaymentsDep) -> OrderPublic:
    """PayOrder: turn the user's whole cart into a PAID order."""
    return await payments.pay(body.user_id)
