"""CartService on B: the read model and removing items."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.db import Checkout
from shopkit.db import Outbox
from shopkit.wire import utcnow
from shopkit_testing import assert_error
from tests.conftest import Shop, next_id


async def outbox(app: FastAPI) -> list[dict]:
    async with app.state.sessions() as session:
        rows = (await session.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
    return [{"topic": r.topic, "key": r.key, **json.loads(r.payload)} for r in rows]


async def test_empty_cart(client: AsyncClient) -> None:
    for path in ("/cart?user_id=5", "/cart/5"):
        resp = await client.get(path)
        assert (resp.status_code, resp.json()) == (200, {"user_id": 5, "items": []})


async def test_cart_from_read_model(client: AsyncClient, shop: Shop) -> None:
    user, pid = next_id(), await shop.product()
    items = [await shop.add(user, pid, q) for q in (1, 2)]
    await shop.add(next_id(), pid)  # someone else's
    want = {"user_id": user, "items": items}
    assert (await client.get("/cart", params={"user_id": str(user)})).json() == want
    assert (await client.get(f"/cart/{user}")).json() == want


@pytest.mark.parametrize(
    "path", ["/cart", "/cart?user_id=", "/cart?user_id=abc", "/cart?user_id=0", "/cart/abc", "/cart/-3"]
)
async def test_cart_bad_user(client: AsyncClient, path: str) -> None:
    assert_error(await client.get(path), 422, "INVALID_ARGUMENT", contains="user_id")


async def test_remove_item(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user, pid = next_id(), await shop.product()
    first, second = await shop.add(user, pid), await shop.add(user, pid)
    resp = await client.delete(f"/cart/{first['item_id']}")
    assert (resp.status_code, resp.json()) == (200, first)
    assert (await client.get(f"/cart/{user}")).json()["items"] == [second]
    events = await outbox(app)
    assert len(events) == 1
    assert (events[0]["topic"], events[0]["key"], events[0]["type"]) == (
        "service-b.order-events.v1",
        str(user),
        "cart.item_removed",
    )
    assert events[0]["data"] == {"item": first}
    assert_error(await client.delete(f"/cart/{first['item_id']}"), 404, "NOT_FOUND", contains=str(first["item_id"]))
    assert_error(await client.delete("/cart/abc"), 422, "INVALID_ARGUMENT", contains="item_id")


async def test_remove_while_paying(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user, pid = next_id(), await shop.product()
    item = await shop.add(user, pid)
    async with app.state.sessions() as session, session.begin():
        session.add(Checkout(reservation_id="pay-busy", user_id=user, item_ids="[]", started_at=utcnow()))
    assert_error(await client.delete(f"/cart/{item['item_id']}"), 400, "FAILED_PRECONDITION", contains="being paid")
    assert (await client.get(f"/cart/{user}")).json()["items"] == [item]


async def test_remove_item_with_idempotency_key_replays(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user, pid = next_id(), await shop.product()
    item = await shop.add(user, pid)
    headers = {"Idempotency-Key": "rm-1"}
    first = await client.delete(f"/cart/{item['item_id']}", headers=headers)
    again = await client.delete(f"/cart/{item['item_id']}", headers=headers)
    assert (first.status_code, again.status_code, again.json()) == (200, 200, item)
    assert again.headers["idempotency-replayed"] == "true"
    assert len(await outbox(app)) == 1
