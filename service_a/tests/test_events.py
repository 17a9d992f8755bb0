"""Consuming B's events: applied once, in the same transaction as the inbox record."""

from __future__ import annotations

import json

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from shopkit.db import Inbox, Outbox
from shopkit.testing import event_record
from tests.support import create_stock


def event(type_: str, data: dict, event_id: str | None = None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record (value, headers) of an event of B's order-events topic, as B publishes it."""
    return event_record(type_, data, event_id, source="/service-b")


async def fill_cart(client: AsyncClient, user_id: int, n: int) -> list[dict]:
    await create_stock(client, 1, quantity=100)
    return [
        (await client.post("/cart/add", json={"user_id": user_id, "product_id": 1, "quantity": 1})).json()
        for _ in range(n)
    ]


async def removal_events(app: FastAPI) -> list[dict]:
    async with app.state.sessions() as session:
        rows = (await session.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
    return [json.loads(r.payload) for r in rows if json.loads(r.payload)["type"] == "cart.item_removed"]


async def test_order_paid_removes_only_the_paid_items_once(client: AsyncClient, app: FastAPI) -> None:
    items = await fill_cart(client, 5, 3)
    paid = [items[0]["item_id"], items[1]["item_id"]]
    raw = event("order.paid", {"order": {"order_id": 1, "user_id": 5}, "item_ids": paid, "reservation_id": "pay-x"})
    bridge = app.state.bridge
    await bridge._apply(*raw, "test")
    await bridge._apply(*raw, "test")  # redelivery
    cart = (await client.get("/cart/fallback/5")).json()["items"]
    assert [i["item_id"] for i in cart] == [items[2]["item_id"]]
    removed = await removal_events(app)
    assert sorted(e["data"]["item"]["item_id"] for e in removed) == sorted(paid)
    assert {e["data"]["reason"] for e in removed} == {"order_paid"}
    async with app.state.sessions() as session:
        assert len((await session.execute(select(Inbox))).scalars().all()) == 1


async def test_order_paid_for_another_user_removes_nothing(client: AsyncClient, app: FastAPI) -> None:
    items = await fill_cart(client, 5, 1)
    raw = event("order.paid", {"order": {"order_id": 1, "user_id": 6}, "item_ids": [items[0]["item_id"]]})
    await app.state.bridge._apply(*raw, "test")
    assert len((await client.get("/cart/fallback/5")).json()["items"]) == 1


async def test_cart_item_removed(client: AsyncClient, app: FastAPI) -> None:
    items = await fill_cart(client, 5, 2)
    bridge = app.state.bridge
    await bridge._apply(*event("cart.item_removed", {"item": items[0]}), "test")
    # A different event for an item already gone changes nothing either.
    await bridge._apply(*event("cart.item_removed", {"item": items[0]}), "test")
    cart = (await client.get("/cart/fallback/5")).json()["items"]
    assert [i["item_id"] for i in cart] == [items[1]["item_id"]]
    assert len(await removal_events(app)) == 1


async def test_order_paid_redelivered_after_a_new_add_keeps_it(client: AsyncClient, app: FastAPI) -> None:
    # At-least-once delivery: the event comes again after later changes; the
    # line added since must stay and no removal is published twice. Two
    # things keep it: the inbox drops the repeat, and line ids are never
    # reused (sqlite_autoincrement); this fails when both are switched off.
    items = await fill_cart(client, 5, 1)
    raw = event("order.paid", {"order": {"order_id": 1, "user_id": 5}, "item_ids": [items[0]["item_id"]]}, "paid-1")
    bridge = app.state.bridge
    await bridge._apply(*raw, "test")
    later = (await client.post("/cart/add", json={"user_id": 5, "product_id": 1, "quantity": 1})).json()
    await bridge._apply(*raw, "test")
    assert (await client.get("/cart/fallback/5")).json()["items"] == [later]
    assert [e["data"]["item"]["item_id"] for e in await removal_events(app)] == [items[0]["item_id"]]


async def test_cart_item_removed_redelivered_after_a_new_add_keeps_it(client: AsyncClient, app: FastAPI) -> None:
    items = await fill_cart(client, 5, 1)
    raw = event("cart.item_removed", {"item": items[0]}, "removed-1")
    bridge = app.state.bridge
    await bridge._apply(*raw, "test")
    later = (await client.post("/cart/add", json={"user_id": 5, "product_id": 1, "quantity": 1})).json()
    await bridge._apply(*raw, "test")
    assert (await client.get("/cart/fallback/5")).json()["items"] == [later]
    assert [e["data"]["item"]["item_id"] for e in await removal_events(app)] == [items[0]["item_id"]]


async def test_malformed_and_unknown_events_are_skipped(client: AsyncClient, app: FastAPI) -> None:
    items = await fill_cart(client, 5, 1)
    bridge = app.state.bridge
    await bridge._apply(b"not json", [], "test")
    await bridge._apply(b'{"event_id": "x"}', [], "test")
    await bridge._apply(*event("order.paid", {"order": {}}), "test")  # no user_id: skipped
    await bridge._apply(*event("something.new", {}), "test")
    assert len((await client.get("/cart/fallback/5")).json()["items"]) == 1
    assert items
