"""Request and response models of service A, split per direction (XCreate,
XUpdate, XPublic).

Field names are the proto field names. The id, quantity, money and timestamp
types, and how they read and write JSON, are in :mod:`shopkit.wire`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopkit.wire import (  # noqa: F401  (CartItemPublic, CartPublic: the shared cart resource, re-exported)
    INT32_MAX,
    CartItemPublic,
    CartPublic,
    Cents,
    Id,
    Name,
    NotBool,
    OptionalId,
    Quantity,
    StockQuantity,
)

ReservationId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
"""A client-chosen key that makes a stock decrement idempotent and releasable."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# Stock


class StockCreate(_Model):
    """Body of POST /stock."""

    product_id: Id
    product_name: Name
    quantity: StockQuantity
    price_cents: Cents


class StockUpdate(_Model):
    """Body of PUT /stock/{product_id}: replaces name, quantity and price.

    product_id may be 0 (not set) or must equal the one in the path."""

    product_id: OptionalId = 0
    product_name: Name
    quantity: StockQuantity
    price_cents: Cents


class StockLevelUpdate(_Model):
    """Body of POST /stock/update: sets the quantity on hand.

    A negative quantity is refused by the route with 400 INVALID_ARGUMENT
    (not 422): the body is well-formed, the value is not allowed."""

    product_id: Id
    quantity: Annotated[int, NotBool, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]


class StockPublic(_Model):
    """A stock item as returned."""

    model_config = ConfigDict(from_attributes=True)

    product_id: int
    product_name: str
    quantity: int
    price_cents: int


class StockPage(_Model):
    """One page of GET /stock."""

    items: list[StockPublic]
    next_page_token: str


# Cart


class CartItemCreate(_Model):
    """Body of POST /cart/add."""

    user_id: Id
    product_id: Id
    quantity: Quantity


class FallbackCartRequest(_Model):
    """Body of POST /cart/fallback."""

    user_id: Id


# Order stock


class StockLine(_Model):
    """A product and the units to take from its stock."""

    product_id: Id
    quantity: Quantity


class ProcessStockRequest(_Model):
    """Body of POST /order/process_stock.

    reservation_id is an extension for service B: when set, the decrement is
    recorded under it, a repeated call returns the recorded result without
    decrementing again, and POST /order/release_stock can undo it."""

    items: list[StockLine]
    reservation_id: ReservationId | None = None

    @model_validator(mode="after")
    def _merge_items(self) -> ProcessStockRequest:
        """Lines of one product become one line for the sum of their units, in
        the place of the first: taking 1 and then 1 more is taking 2."""
        if not self.items:
            raise ValueError("items must not be empty")
        merged: dict[int, int] = {}
        for line in self.items:
            merged[line.product_id] = merged.get(line.product_id, 0) + line.quantity
        if len(merged) < len(self.items):
            # model_construct: a sum may pass the bound of one line's units;
            # the stock check refuses it as more than there is.
            self.items = [StockLine.model_construct(product_id=p, quantity=q) for p, q in merged.items()]
        return self


class ProcessStockResponse(_Model):
    """The stock items after the decrement, in request order."""

    items: list[StockPublic]


class ReleaseStockRequest(_Model):
    """Body of POST /order/release_stock."""

    reservation_id: ReservationId


class ReleaseStockResponse(_Model):
    """Result of POST /order/release_stock.

    released is true when this call gave the units back; false when there was
    nothing to give back (already released, or never applied: the reservation
    id is then blocked so that a late process_stock with it fails)."""

    reservation_id: str
    released: bool
    items: list[StockLine]


class MasterItem(_Model):
    """A line of the master cart, as the internal lookup of service B sees it."""

    item_id: int
    user_id: int


class MasterCartIds(_Model):
    """The ids of a user's lines in the master cart."""

    user_id: int
    item_ids: list[int]
