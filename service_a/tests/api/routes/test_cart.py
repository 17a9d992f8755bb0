"""CartService on A: add to cart and the fallback cart."""

from __future__ import annotations

import json
import re

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from shopkit.db import Outbox
from shopkit_testing import assert_error
from tests.support import create_stock

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def outbox_events(app: FastAPI) -> list[dict]:
    async with app.state.sessions() as session:
        rows = (await session.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
    return [{"topic": r.topic, "key": r.key, **json.loads(r.payload)} for r in rows]


async def test_add_to_cart(client: AsyncClient, app: FastAPI) -> None:
    await create_stock(client, 5, quantity=3)
    resp = await client.post("/cart/add", json={"user_id": "10", "product_id": "5", "quantity": 3})
    assert resp.status_code == 201, resp.text
    item = resp.json()
    assert {k: item[k] for k in ("user_id", "product_id", "quantity")} == {
        "user_id": 10,
        "product_id": 5,
        "quantity": 3,
    }
    assert isinstance(item["item_id"], int) and item["item_id"] > 0
    assert RFC3339_Z.match(item["added_at"]), item["added_at"]
    # Stock is not decremented by adding to a cart.
    assert (await client.get("/stock/5")).json()["quantity"] == 3
    events = await outbox_events(app)
    assert len(events) == 1
    event = events[0]
    # The outbox keeps the event in the CloudEvents JSON format.
    assert (event["topic"], event["key"], event["specversion"], event["type"], event["source"]) == (
        "service-a.cart-changes.v1",
        "10",
        "1.0",
        "cart.item_added",
        "/service-a",
    )
    assert (event["subject"], event["datacontenttype"]) == (str(item["item_id"]), "application/json")
    assert RFC3339_Z.match(event["time"]), event["time"]
    assert event["data"] == {"item": item}
    assert event["id"]
    assert "traceparent" not in event


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True),
        ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", False),  # upper case
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),  # zero trace id
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),  # version ff
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", False),  # no flags
        ("garbage", False),
    ],
)
async def test_event_keeps_a_valid_traceparent(client: AsyncClient, app: FastAPI, sent: str, kept: bool) -> None:
    await create_stock(client, 5, quantity=3)
    resp = await client.post(
        "/cart/add", json={"user_id": 10, "product_id": 5, "quantity": 1}, headers={"traceparent": sent}
    )
    assert resp.status_code == 201, resp.text
    [event] = await outbox_events(app)
    assert event.get("traceparent") == (sent if kept else None)


async def test_add_twice_makes_two_lines(client: AsyncClient) -> None:
    await create_stock(client, 5, quantity=3)
    first = (await client.post("/cart/add", json={"user_id": 1, "product_id": 5, "quantity": 2})).json()
    second = (await client.post("/cart/add", json={"user_id": 1, "product_id": 5, "quantity": 2})).json()
    assert first["item_id"] != second["item_id"]
    cart = (await client.get("/cart/fallback/1")).json()
    assert [i["item_id"] for i in cart["items"]] == [first["item_id"], second["item_id"]]


async def test_add_errors(client: AsyncClient, app: FastAPI) -> None:
    await create_stock(client, 5, quantity=3)
    short = await client.post("/cart/add", json={"user_id": 1, "product_id": 5, "quantity": 4})
    assert_error(short, 400, "FAILED_PRECONDITION", contains="3 on hand")
    assert short.json()["reason"] == "OUT_OF_STOCK"
    unknown = await client.post("/cart/add", json={"user_id": 1, "product_id": 6, "quantity": 1})
    assert_error(unknown, 404, "NOT_FOUND", contains="6")
    assert unknown.json()["reason"] == "UNKNOWN_PRODUCT"
    assert await outbox_events(app) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"product_id": 5, "quantity": 1}, "user_id", id="missing user"),
        pytest.param({"user_id": 1, "product_id": 5, "quantity": 0}, "quantity", id="zero quantity"),
        pytest.param({"user_id": 1, "product_id": 5, "quantity": "lots"}, "quantity", id="non-numeric quantity"),
        pytest.param({"user_id": -1, "product_id": 5, "quantity": 1}, "user_id", id="negative user"),
        pytest.param({"user_id": 1, "product_id": False, "quantity": 1}, "product_id", id="bool product"),
    ],
)
async def test_add_invalid(client: AsyncClient, body: dict, field: str) -> None:
    await create_stock(client, 5)
    assert_error(await client.post("/cart/add", json=body), 422, "INVALID_ARGUMENT", contains=f"{field}:")


async def test_fallback_cart(client: AsyncClient) -> None:
    await create_stock(client, 5, quantity=9)
    items = [
        (await client.post("/cart/add", json={"user_id": 2, "product_id": 5, "quantity": q})).json() for q in (1, 2)
    ]
    await client.post("/cart/add", json={"user_id": 3, "product_id": 5, "quantity": 1})
    want = {"user_id": 2, "items": items}
    post = await client.post("/cart/fallback", json={"user_id": "2"})
    get = await client.get("/cart/fallback/2")
    assert (post.status_code, post.json()) == (200, want)
    assert (get.status_code, get.json()) == (200, want)


async def test_fallback_cart_empty_and_invalid(client: AsyncClient) -> None:
    assert (await client.get("/cart/fallback/77")).json() == {"user_id": 77, "items": []}
    assert_error(await client.post("/cart/fallback", json={}), 422, "INVALID_ARGUMENT", contains="user_id")
    assert_error(await client.get("/cart/fallback/abc"), 422, "INVALID_ARGUMENT", contains="user_id")
