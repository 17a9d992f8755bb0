"""The JSON wire format both services share: int64 ids, quantities, money,
names and timestamps, and the UTC time functions behind them.

Field names are the proto field names. int64 fields accept JSON numbers or
numeric strings (protojson writes int64 as strings) and are written back as
numbers; booleans and numbers with a fraction are refused. Timestamps are
stored as naive UTC datetimes and written as RFC 3339 UTC with microseconds
and a ``Z`` suffix.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def _reject_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Control characters (Unicode category Cc: C0, DEL and C1)."""


def _no_control(value: str) -> str:
    # No text of the API is meant to hold one, and PostgreSQL's text cannot
    # store NUL: refused here on every database alike.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def to_utc_naive(value: datetime) -> datetime:
    """value as a naive UTC datetime, the form the database stores."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a Z suffix: 2026-11-25T17:40:00.123456Z."""
    return to_utc_naive(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow() -> datetime:
    """The current time as a naive UTC datetime."""
    return datetime.now(UTC).replace(tzinfo=None)


NotBool = BeforeValidator(_reject_bool)
"""Refuses a JSON boolean where an integer is wanted (pydantic would take true as 1)."""

Id = Annotated[int, NotBool, Field(gt=0, le=INT64_MAX)]
"""A positive int64 id."""
OptionalId = Annotated[int, NotBool, Field(ge=0, le=INT64_MAX)]
"""An int64 id where 0 means "not set"."""
Quantity = Annotated[int, NotBool, Field(gt=0, le=INT32_MAX)]
"""A positive int32 number of units."""
StockQuantity = Annotated[int, NotBool, Field(ge=0, le=INT32_MAX)]
"""A non-negative int32 number of units on hand."""
Cents = Annotated[int, NotBool, Field(ge=0, le=INT64_MAX)]
"""A non-negative int64 amount of money in cents."""
Name = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_no_control), AfterValidator(_not_blank)]
"""A non-empty product name without control characters."""
Timestamp = Annotated[
    datetime, AfterValidator(to_utc_naive), PlainSerializer(format_timestamp, return_type=str, when_used="json")
]
"""A point in time, written as RFC 3339 UTC with a Z suffix."""


# The cart resource, which both services serve and exchange through Kafka
# (A's master copy, B's read model).


class CartItemPublic(BaseModel):
    """A cart item as returned and as carried in the services' events."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    item_id: Id
    user_id: Id
    product_id: Id
    quantity: Quantity
    added_at: Timestamp


class CartPublic(BaseModel):
    """A user's cart, oldest item first."""

    model_config = ConfigDict(extra="ignore")

    user_id: int
    items: list[CartItemPublic]
