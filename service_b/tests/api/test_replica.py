"""Where facts stand: while B's copy of a cart lags A's master (A's event not
applied yet), a delete or a payment is never answered "not found" or
"empty" for lines that exist at A: 503 UNAVAILABLE with Retry-After, nothing
changed, and the retry after the copy caught up is applied."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from app.main import create_app
from app.settings import Settings
from shopkit.db import Outbox
from shopkit_testing import as_service, as_user, assert_error, free_port
from tests.conftest import Shop, cart_event, next_id


async def outbox(app: FastAPI) -> int:
    async with app.state.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Outbox))).scalar_one())


async def add_on_a_only(shop: Shop, user: int, product: int) -> dict[str, Any]:
    """An add that reached A's master but not (yet) B's copy."""
    resp = await shop.a.post("/cart/add", json={"user_id": user, "product_id": product, "quantity": 1})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def assert_retry(resp: Any) -> None:
    assert_error(resp, 503, "UNAVAILABLE", contains="try again")
    assert resp.headers["retry-after"] == "1"


async def test_delete_of_a_line_the_copy_lacks(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user = next_id()
    item = await add_on_a_only(shop, user, await shop.product())
    path = f"/cart/{item['item_id']}"
    assert_retry(await client.delete(path, headers=as_user(user)))
    assert await outbox(app) == 0
    # Another user is told what they are always told about it: nothing.
    assert_error(await client.delete(path, headers=as_user(user + 1)), 404, "NOT_FOUND")
    # Once the copy has it, the retry removes it.
    await app.state.bridge.consumer.apply(*cart_event("cart.item_added", item), "test")
    resp = await client.delete(path, headers=as_user(user))
    assert (resp.status_code, resp.json()["item_id"]) == (200, item["item_id"]), resp.text


async def test_delete_of_a_line_nobody_has(client: AsyncClient, shop: Shop) -> None:
    user = next_id()
    assert_error(await client.delete(f"/cart/{next_id()}", headers=as_user(user)), 404, "NOT_FOUND")


async def test_payment_of_a_cart_the_copy_has_empty(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user = next_id()
    pid = await shop.product(quantity=5)
    item = await add_on_a_only(shop, user, pid)
    assert_retry(await client.post("/order/pay", json={"user_id": user}, headers=as_user(user)))
    assert await outbox(app) == 0
    assert await shop.quantity(pid) == 5
    await app.state.bridge.consumer.apply(*cart_event("cart.item_added", item), "test")
    resp = await client.post("/order/pay", json={"user_id": user}, headers=as_user(user))
    assert resp.status_code == 200, resp.text
    assert await shop.quantity(pid) == 4


async def test_payment_of_a_cart_empty_everywhere(client: AsyncClient, shop: Shop) -> None:
    user = next_id()
    resp = await client.post("/order/pay", json={"user_id": user}, headers=as_user(user))
    assert_error(resp, 400, "FAILED_PRECONDITION", contains="empty")
    assert resp.json()["reason"] == "EMPTY_CART"


async def test_a_that_cannot_say_is_not_taken_for_empty(settings: Settings, shop: Shop) -> None:
    """A unreachable: B cannot confirm that the line or the cart does not
    exist, so it does not say so."""
    from httpx import ASGITransport

    down = settings.model_copy(update={"service_a_url": f"http://127.0.0.1:{free_port()}"})
    app = create_app(down)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://b", headers=as_service()) as client:
            user = next_id()
            assert_retry(await client.delete(f"/cart/{next_id()}", headers=as_user(user)))
            assert_retry(await client.post("/order/pay", json={"user_id": user}, headers=as_user(user)))
