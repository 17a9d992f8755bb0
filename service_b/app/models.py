"""Request and response models of service B, split per direction (XCreate,
XUpdate, XPublic).

Field names are the proto field names. The id, quantity, money and timestamp
types, and how they read and write JSON, are in :mod:`shopkit.wire`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from shopkit.wire import (  # noqa: F401  (CartItemPublic, CartPublic: the shared cart resource, re-exported)
    CartItemPublic,
    CartPublic,
    Cents,
    Id,
    StockQuantity,
    Timestamp,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# Orders

ORDER_STATUS_PAID = "ORDER_STATUS_PAID"


class PayRequest(_Model):
    """Body of POST /order/pay."""

    user_id: Id


class OrderItemPublic(_Model):
    """One line of an order, priced when it was paid."""

    model_config = ConfigDict(from_attributes=True)

    product_id: int
    quantity: int
    price_cents: int


class OrderPublic(_Model):
    """An order as returned and as carried in the order.paid event."""

    order_id: int
    user_id: int
    items: list[OrderItemPublic]
    total_cents: int
    status: str
    created_at: Timestamp


class OrderList(_Model):
    """A user's orders, newest first."""

    orders: list[OrderPublic]


# Service A's answers


class StockLine(_Model):
    """A product and the units to take from its stock (request to service A)."""

    product_id: int
    quantity: int


class StockItem(_Model):
    """A stock item as service A returns it."""

    product_id: Id
    product_name: str
    quantity: StockQuantity
    price_cents: Cents


class ProcessStockResponse(_Model):
    """Service A's answer to POST /order/process_stock."""

    items: list[StockItem]
