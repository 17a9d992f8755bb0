"""Request and response models, split per direction (XCreate, XUpdate, XPublic).

Field names are the proto field names. int64 fields accept JSON numbers or
numeric strings (protojson writes int64 as strings) and are written back as
numbers; booleans and numbers with a fraction are refused.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def _reject_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def to_utc_naive(value: datetime) -> datetime:
    """value as a naive UTC datetime, the form the database stores."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a Z suffix: 2026-11-25T17:40:00.123456Z."""
    return to_utc_naive(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow() -> datetime:
    """The current time as a naive UTC datetime."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


_Int = BeforeValidator(_reject_bool)

Id = Annotated[int, _Int, Field(gt=0, le=INT64_MAX)]
"""A positive int64 id."""
OptionalId = Annotated[int, _Int, Field(ge=0, le=INT64_MAX)]
"""An int64 id where 0 means "not set"."""
Quantity = Annotated[int, _Int, Field(gt=0, le=INT32_MAX)]
"""A positive int32 number of units."""
StockQuantity = Annotated[int, _Int, Field(ge=0, le=INT32_MAX)]
"""A non-negative int32 number of units on hand."""
Cents = Annotated[int, _Int, Field(ge=0, le=INT64_MAX)]
"""A non-negative int64 amount of money in cents."""
Name = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_not_blank)]
"""A non-empty product name."""
Timestamp = Annotated[
    datetime, AfterValidator(to_utc_naive), PlainSerializer(format_timestamp, return_type=str, when_used="json")
]
"""A point in time, written as RFC 3339 UTC with a Z suffix."""
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
    quantity: Annotated[int, _Int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]


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


class CartItemPublic(_Model):
    """A cart item as returned and as carried in events."""

    model_config = ConfigDict(from_attributes=True)

    item_id: Id
    user_id: Id
    product_id: Id
    quantity: Quantity
    added_at: Timestamp


class FallbackCartRequest(_Model):
    """Body of POST /cart/fallback."""

    user_id: Id


class CartPublic(_Model):
    """A user's cart, oldest item first."""

    user_id: int
    items: list[CartItemPublic]


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
    def _check_items(self) -> ProcessStockRequest:
        if not self.items:
            raise ValueError("items must not be empty")
        seen: set[int] = set()
        for line in self.items:
            if line.product_id in seen:
                raise ValueError(f"product {line.product_id} appears more than once in items")
            seen.add(line.product_id)
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
