"""Consuming B's events: applied once, in the same transaction as the inbox record."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import CartItem
from shopkit.db import Inbox, Outbox
from shopkit.events import Event
from shopkit.wire import CartItemPublic
from shopkit_testing import event_record
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
    await bridge.consumer.apply(*raw, "test")
    await bridge.consumer.apply(*raw, "test")  # redelivery
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
    await app.state.bridge.consumer.apply(*raw, "test")
    assert len((await client.get("/cart/fallback/5")).json()["items"]) == 1


async def test_cart_item_removed(client: AsyncClient, app: FastAPI) -> None:
    items = await fill_cart(client, 5, 2)
    bridge = app.state.bridge
    await bridge.consumer.apply(*event("cart.item_removed", {"item": items[0]}), "test")
    # A different event for an item already gone changes nothing either.
    await bridge.consumer.apply(*event("cart.item_removed", {"item": items[0]}), "test")
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
    await bridge.consumer.apply(*raw, "test")
    later = (await client.post("/cart/add", json={"user_id": 5, "product_id": 1, "quantity": 1})).json()
    await bridge.consumer.apply(*raw, "test")
    assert (await client.get("/cart/fallback/5")).json()["items"] == [later]
    assert [e["data"]["item"]["item_id"] for e in await removal_events(app)] == [items[0]["item_id"]]


async def test_cart_item_removed_redelivered_after_a_new_add_keeps_it(client: AsyncClient, app: FastAPI) -> None:
    items = await fill_cart(client, 5, 1)
    raw = event("cart.item_removed", {"item": items[0]}, "removed-1")
    bridge = app.state.bridge
    await bridge.consumer.apply(*raw, "test")
    later = (await client.post("/cart/add", json={"user_id": 5, "product_id": 1, "quantity": 1})).json()
    await bridge.consumer.apply(*raw, "test")
    assert (await client.get("/cart/fallback/5")).json()["items"] == [later]
    assert [e["data"]["item"]["item_id"] for e in await removal_events(app)] == [items[0]["item_id"]]


async def test_malformed_and_unknown_events_are_skipped(client: AsyncClient, app: FastAPI) -> None:
    items = await fill_cart(client, 5, 1)
    bridge = app.state.bridge
    await bridge.consumer.apply(b"not json", [], "test")
    await bridge.consumer.apply(b'{"event_id": "x"}', [], "test")
    await bridge.consumer.apply(*event("order.paid", {"order": {}}), "test")  # no user_id: skipped
    await bridge.consumer.apply(*event("something.new", {}), "test")
    assert len((await client.get("/cart/fallback/5")).json()["items"]) == 1
    assert items


def records(*events: tuple[bytes, list[tuple[str, bytes]]]) -> list[SimpleNamespace]:
    """Consumer records of one partition fetch, at offsets 0, 1, ..."""
    return [SimpleNamespace(value=value, headers=headers, offset=i) for i, (value, headers) in enumerate(events)]


def handled_ids(bridge: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the events that bridge's handler is called with from now on."""
    handled: list[str] = []
    handler = bridge.consumer.handler

    async def recording(session: AsyncSession, event: Event) -> None:
        handled.append(event.id)
        await handler(session, event)

    monkeypatch.setattr(bridge.consumer, "handler", recording)
    return handled


async def restore_lines(app: FastAPI, items: list[dict]) -> None:
    """Put cart lines back under their old ids: the one state in which a
    repeated removal would change the cart, so only the inbox can stop it."""
    async with app.state.sessions() as session, session.begin():
        session.add_all(CartItem(**CartItemPublic.model_validate(item).model_dump()) for item in items)


async def cart_of(client: AsyncClient, user_id: int) -> list[dict]:
    """The lines of user_id's master cart."""
    return list((await client.get(f"/cart/fallback/{user_id}")).json()["items"])


async def test_a_batch_redelivered_after_its_lines_return_removes_nothing(
    client: AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch of order.paid and cart.item_removed delivered again after its
    lines are back under the same ids is dropped by the batch's own inbox
    lookup: the lines stay, no removal is published twice, and the handler
    never sees the repeated events."""
    items = await fill_cart(client, 5, 3)
    ids = [i["item_id"] for i in items]
    batch = records(
        event("order.paid", {"order": {"order_id": 1, "user_id": 5}, "item_ids": ids[:2]}, "paid-1"),
        event("cart.item_removed", {"item": items[2]}, "removed-1"),
    )
    bridge = app.state.bridge
    handled = handled_ids(bridge, monkeypatch)
    await bridge.consumer.apply_batch("topic", 0, batch)
    assert await cart_of(client, 5) == []
    await restore_lines(app, items)
    await bridge.consumer.apply_batch("topic", 0, batch)
    assert await cart_of(client, 5) == items, "the redelivered batch removed the returned lines again"
    removed = [e["data"]["item"]["item_id"] for e in await removal_events(app)]
    assert sorted(removed) == sorted(ids), "a removal was published twice"
    assert handled == ["paid-1", "removed-1"], "the redelivered batch reached the handler"


@pytest.mark.parametrize("type_", ["order.paid", "cart.item_removed"])
async def test_an_event_redelivered_after_its_line_returns_removes_nothing(
    client: AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch, type_: str
) -> None:
    """An event applied one at a time and delivered again after its line is
    back under the same id is dropped by the inbox: the line stays, its
    removal is published once, and the handler sees the event once."""
    items = await fill_cart(client, 5, 1)
    data = (
        {"order": {"order_id": 1, "user_id": 5}, "item_ids": [items[0]["item_id"]]}
        if type_ == "order.paid"
        else {"item": items[0]}
    )
    raw = event(type_, data, "once-1")
    bridge = app.state.bridge
    handled = handled_ids(bridge, monkeypatch)
    await bridge.consumer.apply(*raw, "test")
    assert await cart_of(client, 5) == []
    await restore_lines(app, items)
    await bridge.consumer.apply(*raw, "test")
    assert await cart_of(client, 5) == items, "the redelivered event removed the returned line again"
    removed = [e["data"]["item"]["item_id"] for e in await removal_events(app)]
    assert removed == [items[0]["item_id"]], "a removal was published twice"
    assert handled == ["once-1"], "the redelivered event reached the handler"
