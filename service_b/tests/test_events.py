"""Consuming A's cart changes into the read model: applied once, idempotently."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shopkit.db import Inbox
from shopkit.events import Event
from tests.conftest import cart_event

ITEM = {"item_id": 11, "user_id": 3, "product_id": 4, "quantity": 2, "added_at": "2026-11-25T17:40:00.123456Z"}


async def test_added_is_upserted_once(client: AsyncClient, app: FastAPI) -> None:
    bridge = app.state.bridge
    raw = cart_event("cart.item_added", ITEM, event_id="e-1")
    await bridge.consumer.apply(*raw, "test")
    await bridge.consumer.apply(*raw, "test")  # redelivery
    await bridge.consumer.apply(*cart_event("cart.item_added", ITEM), "test")  # re-published under a new id
    assert (await client.get("/cart/3")).json() == {"user_id": 3, "items": [ITEM]}
    async with app.state.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Inbox))).scalar_one() == 2


async def test_added_with_string_ids(client: AsyncClient, app: FastAPI) -> None:
    item = {**ITEM, "item_id": "12", "user_id": "3"}
    await app.state.bridge.consumer.apply(*cart_event("cart.item_added", item), "test")
    assert (await client.get("/cart/3")).json()["items"] == [{**ITEM, "item_id": 12}]


async def test_removed(client: AsyncClient, app: FastAPI) -> None:
    bridge = app.state.bridge
    await bridge.consumer.apply(*cart_event("cart.item_added", ITEM), "test")
    await bridge.consumer.apply(*cart_event("cart.item_removed", ITEM), "test")
    await bridge.consumer.apply(*cart_event("cart.item_removed", ITEM), "test")  # already gone: no-op
    assert (await client.get("/cart/3")).json()["items"] == []


async def test_add_redelivered_after_its_remove_stays_removed(client: AsyncClient, app: FastAPI) -> None:
    # Kafka delivers at least once: after a consumer restart or rebalance an
    # event can come again after later ones. Only the inbox stops this add
    # from bringing the removed line back.
    bridge = app.state.bridge
    added = cart_event("cart.item_added", ITEM, event_id="add-1")
    await bridge.consumer.apply(*added, "test")
    await bridge.consumer.apply(*cart_event("cart.item_removed", ITEM, event_id="remove-1"), "test")
    await bridge.consumer.apply(*added, "test")
    assert (await client.get("/cart/3")).json()["items"] == []


async def test_add_redelivered_after_a_remove_on_b_stays_removed(client: AsyncClient, app: FastAPI) -> None:
    bridge = app.state.bridge
    added = cart_event("cart.item_added", ITEM, event_id="add-2")
    await bridge.consumer.apply(*added, "test")
    resp = await client.delete(f"/cart/{ITEM['item_id']}")
    assert (resp.status_code, resp.json()) == (200, ITEM)
    await bridge.consumer.apply(*added, "test")
    assert (await client.get("/cart/3")).json()["items"] == []


async def test_malformed_events_are_skipped(client: AsyncClient, app: FastAPI) -> None:
    bridge = app.state.bridge
    await bridge.consumer.apply(b"\xff not json", [], "test")
    await bridge.consumer.apply(*cart_event("cart.item_added", {**ITEM, "quantity": 0}), "test")
    await bridge.consumer.apply(*cart_event("cart.item_added", {"item_id": 1}), "test")
    await bridge.consumer.apply(*cart_event("cart.something_new", ITEM), "test")
    await bridge.consumer.apply(*cart_event("cart.item_added", ITEM), "test")  # the consumer keeps going
    assert (await client.get("/cart/3")).json()["items"] == [ITEM]


async def test_record_of_an_earlier_version_is_read(client: AsyncClient, app: FastAPI) -> None:
    # Before the services used CloudEvents, a record was a JSON envelope with no ce_ headers.
    envelope = {
        "event_id": "old-1",
        "type": "cart.item_added",
        "source": "service-a",
        "occurred_at": "2026-11-25T00:00:00.000000Z",
        "data": {"item": ITEM},
    }
    bridge = app.state.bridge
    await bridge.consumer.apply(json.dumps(envelope).encode(), [("content-type", b"application/json")], "test")
    assert (await client.get("/cart/3")).json()["items"] == [ITEM]
    # Its event_id is its ce_id: the same event in either form is applied once.
    await bridge.consumer.apply(*cart_event("cart.item_removed", ITEM, event_id="rm-old"), "test")
    await bridge.consumer.apply(json.dumps(envelope).encode(), [], "test")
    assert (await client.get("/cart/3")).json()["items"] == []


def _without(headers: list[tuple[str, bytes]], name: str) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers if k != name]


def _replaced(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(k, value if k == name else v) for k, v in headers]


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda v, h: (v, _without(h, "ce_id")), id="no ce_id"),
        pytest.param(lambda v, h: (v, _without(h, "ce_type")), id="no ce_type"),
        pytest.param(lambda v, h: (v, _without(h, "ce_source")), id="no ce_source"),
        pytest.param(lambda v, h: (v, _replaced(h, "ce_id", b"")), id="empty ce_id"),
        pytest.param(lambda v, h: (v, _replaced(h, "ce_specversion", b"0.3")), id="specversion 0.3"),
        pytest.param(lambda v, h: (v, _replaced(h, "content-type", b"application/protobuf")), id="protobuf data"),
        pytest.param(lambda v, h: (v, [*h, ("ce_id", b"second")]), id="ce_id twice"),
        pytest.param(lambda v, h: (b"[1, 2]", h), id="data not an object"),
        pytest.param(lambda v, h: (b"\xff", h), id="data not JSON"),
        pytest.param(lambda v, h: (None, h), id="no value"),
    ],
)
async def test_malformed_cloudevents_are_skipped(client: AsyncClient, app: FastAPI, broken: object) -> None:
    value, headers = broken(*cart_event("cart.item_added", ITEM))  # type: ignore[operator]
    await app.state.bridge.consumer.apply(value, headers, "test")
    assert (await client.get("/cart/3")).json()["items"] == []
    await app.state.bridge.consumer.apply(*cart_event("cart.item_added", ITEM), "test")  # the consumer keeps going
    assert (await client.get("/cart/3")).json()["items"] == [ITEM]


def records(*events: tuple[bytes, list[tuple[str, bytes]]]) -> list[SimpleNamespace]:
    """Consumer records of one partition fetch, at offsets 0, 1, ..."""
    return [SimpleNamespace(value=value, headers=headers, offset=i) for i, (value, headers) in enumerate(events)]


async def test_a_fetched_batch_is_applied_in_order_once(client: AsyncClient, app: FastAPI) -> None:
    """A batch goes in one transaction, in order, a duplicate id within it or
    already in the inbox applied once."""
    bridge = app.state.bridge
    other = {**ITEM, "item_id": 12}
    await bridge.consumer.apply(*cart_event("cart.item_added", other, event_id="e-0"), "test")
    added = cart_event("cart.item_added", ITEM, event_id="e-1")
    batch = records(
        cart_event("cart.item_added", other, event_id="e-0"),  # applied before: skipped
        added,
        added,  # redelivered within the batch
        cart_event("cart.item_removed", ITEM, event_id="e-2"),
        cart_event("cart.item_added", {**ITEM, "item_id": 13}, event_id="e-3"),
    )
    await bridge.consumer.apply_batch("topic", 0, batch)
    await bridge.consumer.apply_batch("topic", 0, batch)  # the whole fetch redelivered
    items = (await client.get("/cart/3")).json()["items"]
    assert [i["item_id"] for i in items] == [12, 13]
    async with app.state.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Inbox))).scalar_one() == 4


async def test_a_batch_with_a_bad_event_applies_the_rest(client: AsyncClient, app: FastAPI) -> None:
    """A bad event fails the batch's transaction; then the records are
    applied one at a time, and only the bad one is skipped."""
    bridge = app.state.bridge
    batch = records(
        cart_event("cart.item_added", ITEM),
        (b"\xff not json", []),
        cart_event("cart.item_added", {"item_id": 1}),
        cart_event("cart.item_added", {**ITEM, "item_id": 12}),
    )
    await bridge.consumer.apply_batch("topic", 0, batch)
    assert [i["item_id"] for i in (await client.get("/cart/3")).json()["items"]] == [11, 12]


def handled_ids(bridge: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the events that bridge's handler is called with from now on."""
    handled: list[str] = []
    handler = bridge.consumer.handler

    async def recording(session: AsyncSession, event: Event) -> None:
        handled.append(event.id)
        await handler(session, event)

    monkeypatch.setattr(bridge.consumer, "handler", recording)
    return handled


async def test_a_batch_of_adds_redelivered_after_its_removes_stays_removed(
    client: AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch of adds delivered again after a fetch of their removes is
    dropped by the batch's own inbox lookup: the lines stay removed and the
    handler never sees the repeated events."""
    bridge = app.state.bridge
    handled = handled_ids(bridge, monkeypatch)
    other = {**ITEM, "item_id": 12}
    adds = records(cart_event("cart.item_added", ITEM, "add-11"), cart_event("cart.item_added", other, "add-12"))
    removes = records(
        cart_event("cart.item_removed", ITEM, "remove-11"), cart_event("cart.item_removed", other, "remove-12")
    )
    await bridge.consumer.apply_batch("topic", 0, adds)
    assert [i["item_id"] for i in (await client.get("/cart/3")).json()["items"]] == [11, 12]
    await bridge.consumer.apply_batch("topic", 0, removes)
    assert (await client.get("/cart/3")).json()["items"] == []
    await bridge.consumer.apply_batch("topic", 0, adds)
    assert (await client.get("/cart/3")).json()["items"] == [], "the redelivered adds brought the removed lines back"
    assert handled == ["add-11", "add-12", "remove-11", "remove-12"], "the redelivered batch reached the handler"
