"""int64 and int32 fields: numbers or numeric strings, nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.models import CartItemCreate, StockCreate
from shopkit.wire import format_timestamp

OK = {"user_id": 1, "product_id": 2, "quantity": 3}


@pytest.mark.parametrize(
    ("value", "want"),
    [
        pytest.param(42, 42, id="number"),
        pytest.param("42", 42, id="numeric string"),
        pytest.param(42.0, 42, id="float without fraction"),
        pytest.param("9223372036854775807", 2**63 - 1, id="int64 max as string"),
    ],
)
def test_int64_accepts(value: Any, want: int) -> None:
    got = CartItemCreate.model_validate({**OK, "user_id": value}).user_id
    assert got == want


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="bool"),
        pytest.param(4.5, id="fraction"),
        pytest.param("abc", id="non-numeric string"),
        pytest.param("", id="empty string"),
        pytest.param("4.5", id="fraction string"),
        pytest.param(None, id="null"),
        pytest.param(0, id="zero"),
        pytest.param(-1, id="negative"),
        pytest.param(2**63, id="above int64"),
        pytest.param([1], id="list"),
    ],
)
def test_int64_refuses(value: Any) -> None:
    with pytest.raises(ValidationError):
        CartItemCreate.model_validate({**OK, "user_id": value})


def test_int32_quantity_bounds() -> None:
    with pytest.raises(ValidationError):
        CartItemCreate.model_validate({**OK, "quantity": 2**31})
    assert CartItemCreate.model_validate({**OK, "quantity": str(2**31 - 1)}).quantity == 2**31 - 1


@pytest.mark.parametrize("name", ["", "   "])
def test_blank_name_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        StockCreate.model_validate({"product_id": 1, "product_name": name, "quantity": 0, "price_cents": 0})


@pytest.mark.parametrize("name", ["a\x00b", "\x00", "tea\n", "tab\there", "bell\x07", "del\x7f", "c1\x85", " \x1b[31m"])
def test_control_characters_in_name_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        StockCreate.model_validate({"product_id": 1, "product_name": name, "quantity": 0, "price_cents": 0})


@pytest.mark.parametrize("name", ["green tea", "Grüner Tee", "緑茶", "tea\u00a0bag"])
def test_printable_names_kept(name: str) -> None:
    assert (
        StockCreate.model_validate(
            {"product_id": 1, "product_name": name, "quantity": 0, "price_cents": 0}
        ).product_name
        == name
    )


def test_timestamp_format() -> None:
    from datetime import datetime, timedelta, timezone

    aware = datetime(2026, 11, 25, 18, 40, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_timestamp(aware) == "2026-11-25T17:40:00.123456Z"
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"
