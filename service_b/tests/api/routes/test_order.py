"""OrderService on B: paying carts against a real service A, and reading orders."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.db import Checkout, Order, StockRelease
from app.main import create_app
from app.payments import Payments
from app.settings import Settings
from shopkit.db import Outbox
from shopkit.wire import utcnow
from shopkit_testing import as_service, assert_error, free_port
from tests.conftest import Shop, next_id

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def count(app: FastAPI, table: type) -> int:
    async with app.state.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def assert_nothing_written(app: FastAPI) -> None:
    """No order, no event, no payment left behind, nothing to give back."""
    got = [await count(app, t) for t in (Order, Outbox, Checkout, StockRelease)]
    assert got == [0, 0, 0, 0], "orders, outbox, checkouts, stock_releases"


async def test_pay(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user = next_id()
    tea, cake = await shop.product(quantity=10, price_cents=250), await shop.product(quantity=5, price_cents=1000)
    items = [await shop.add(user, tea, 2), await shop.add(user, cake, 1), await shop.add(user, tea, 1)]
    resp = await client.post("/order/pay", json={"user_id": str(user)})
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert order["user_id"] == user and order["order_id"] > 0
    assert order["items"] == [
        {"product_id": tea, "quantity": 3, "price_cents": 250},
        {"product_id": cake, "quantity": 1, "price_cents": 1000},
    ]
    assert (order["total_cents"], order["status"]) == (1750, "ORDER_STATUS_PAID")
    assert RFC3339_Z.match(order["created_at"])
    assert (await shop.quantity(tea), await shop.quantity(cake)) == (7, 4)
    assert (await client.get(f"/cart/{user}")).json()["items"] == []
    assert (await client.get(f"/order/{order['order_id']}")).json() == order

    async with app.state.sessions() as session:
        rows = (await session.execute(select(Outbox))).scalars().all()
    assert len(rows) == 1
    event = json.loads(rows[0].payload)
    assert (rows[0].topic, rows[0].key, event["type"]) == ("service-b.order-events.v1", str(user), "order.paid")
    assert event["data"]["order"] == order
    assert (event["source"], event["subject"]) == ("/service-b", str(order["order_id"]))
    assert sorted(event["data"]["item_ids"]) == sorted(i["item_id"] for i in items)
    assert event["data"]["reservation_id"].startswith("pay-")
    assert [await count(app, t) for t in (Checkout, StockRelease)] == [0, 0]


async def test_list_orders_newest_first(client: AsyncClient, shop: Shop) -> None:
    user, pid = next_id(), await shop.product()
    ids = []
    for _ in range(3):
        await shop.add(user, pid)
        ids.append((await client.post("/order/pay", json={"user_id": user})).json()["order_id"])
    body = (await client.get("/order", params={"user_id": user})).json()
    assert [o["order_id"] for o in body["orders"]] == ids[::-1]
    assert (await client.get("/order", params={"user_id": next_id()})).json() == {"orders": []}


async def test_order_errors(client: AsyncClient) -> None:
    assert_error(await client.get("/order/999999"), 404, "NOT_FOUND", contains="999999")
    assert_error(await client.get("/order/abc"), 422, "INVALID_ARGUMENT", contains="order_id")
    assert_error(await client.get("/order"), 422, "INVALID_ARGUMENT", contains="user_id")


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        pytest.param({}, "user_id", id="missing"),
        pytest.param({"user_id": "abc"}, "user_id", id="non-numeric"),
        pytest.param({"user_id": 0}, "user_id", id="zero"),
        pytest.param({"user_id": 1.5}, "user_id", id="fraction"),
        pytest.param({"user_id": True}, "user_id", id="bool"),
    ],
)
async def test_pay_invalid(client: AsyncClient, body: dict, contains: str) -> None:
    assert_error(await client.post("/order/pay", json=body), 422, "INVALID_ARGUMENT", contains=contains)


async def test_pay_empty_cart(client: AsyncClient, app: FastAPI) -> None:
    resp = await client.post("/order/pay", json={"user_id": 5})
    assert_error(resp, 400, "FAILED_PRECONDITION", contains="empty")
    assert resp.json()["reason"] == "EMPTY_CART"
    await assert_nothing_written(app)


async def test_pay_not_enough_stock(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user, a, b = next_id(), await shop.product(quantity=5), await shop.product(quantity=5)
    items = [await shop.add(user, a, 2), await shop.add(user, b, 3)]
    await shop.a.post("/stock/update", json={"product_id": b, "quantity": 2})
    assert_error(
        await client.post("/order/pay", json={"user_id": user}), 400, "FAILED_PRECONDITION", contains="not enough stock"
    )
    await assert_nothing_written(app)
    assert (await shop.quantity(a), await shop.quantity(b)) == (5, 2)
    assert (await client.get(f"/cart/{user}")).json()["items"] == items


async def test_pay_deleted_product(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user, pid = next_id(), await shop.product()
    await shop.add(user, pid)
    await shop.a.delete(f"/stock/{pid}")
    assert_error(
        await client.post("/order/pay", json={"user_id": user}), 400, "FAILED_PRECONDITION", contains="not found"
    )
    await assert_nothing_written(app)


async def test_pay_while_another_payment_runs(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user, pid = next_id(), await shop.product()
    await shop.add(user, pid)
    async with app.state.sessions() as session, session.begin():
        session.add(Checkout(reservation_id="pay-other", user_id=user, item_ids="[]", started_at=utcnow()))
    assert_error(
        await client.post("/order/pay", json={"user_id": user}), 400, "FAILED_PRECONDITION", contains="in progress"
    )
    assert await shop.quantity(pid) == 10


async def test_pay_with_service_a_down(settings: Settings, shop: Shop) -> None:
    """A refuses connections: 503 UNAVAILABLE and nothing written anywhere."""
    down = settings.model_copy(update={"service_a_url": f"http://127.0.0.1:{free_port()}"})
    app = create_app(down)
    async with app.router.lifespan_context(app):
        user, pid = next_id(), await shop.product()
        item = await Shop(shop.a, app).add(user, pid)
        async with AsyncClient(
            transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://b", headers=as_service()
        ) as client:
            assert_error(await client.post("/order/pay", json={"user_id": user}), 503, "UNAVAILABLE")
            await assert_nothing_written(app)
            assert (await client.get(f"/cart/{user}")).json()["items"] == [item]
            assert (await client.get("/order", params={"user_id": user})).json() == {"orders": []}
    assert await shop.quantity(pid) == 10


async def test_pay_compensates_when_recording_fails(
    client: AsyncClient, shop: Shop, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A took the stock, then B's write failed: the stock is given back."""
    user, pid = next_id(), await shop.product(quantity=4)
    item = await shop.add(user, pid, 3)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Payments, "_record", broken)
    assert_error(await client.post("/order/pay", json={"user_id": user}), 500, "INTERNAL")
    assert await shop.quantity(pid) == 4
    await assert_nothing_written(app)
    assert (await client.get(f"/cart/{user}")).json()["items"] == [item]
    monkeypatch.undo()
    assert (await client.post("/order/pay", json={"user_id": user})).status_code == 200
    assert await shop.quantity(pid) == 1


class FakeA:
    """A stand-in for service A whose process_stock times out."""

    def __init__(self, release_failures: int = 0) -> None:
        self.released: list[str] = []
        self.release_failures = release_failures

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/order/process_stock":
            raise httpx.ReadTimeout("slow", request=request)
        if request.url.path == "/order/release_stock":
            if self.release_failures:
                self.release_failures -= 1
                raise httpx.ConnectError("down", request=request)
            rid = json.loads(request.content)["reservation_id"]
            self.released.append(rid)
            return httpx.Response(200, json={"reservation_id": rid, "released": True, "items": []})
        return httpx.Response(404, json={"code": "NOT_FOUND", "message": "no such path"})


@pytest.fixture
async def fake_a_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, FakeA]]:
    fake = FakeA(release_failures=1)
    app = create_app(settings, a_transport=httpx.MockTransport(fake.handler))
    async with app.router.lifespan_context(app):
        await app.state.payments.stop()  # the test drives the release task by hand
        yield app, fake


async def test_pay_timeout_releases_reservation(fake_a_app: tuple[FastAPI, FakeA], shop: Shop) -> None:
    """A's answer is lost: 503, and the reservation is released (retried until A confirms)."""
    app, fake = fake_a_app
    user, pid = next_id(), await shop.product()
    item = await Shop(shop.a, app).add(user, pid)
    async with AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://b", headers=as_service()
    ) as client:
        assert_error(await client.post("/order/pay", json={"user_id": user}), 503, "UNAVAILABLE")
        assert (await client.get(f"/cart/{user}")).json()["items"] == [item]
    # The first release attempt failed: it is queued, and the background task finishes it.
    assert (await count(app, StockRelease), fake.released) == (1, [])
    await app.state.payments._release_pending()
    assert (await count(app, StockRelease), len(fake.released)) == (0, 1)
    assert fake.released[0].startswith("pay-")
    assert [await count(app, t) for t in (Order, Checkout)] == [0, 0]


async def test_stale_checkout_is_released(fake_a_app: tuple[FastAPI, FakeA]) -> None:
    """A payment that died half-way (process killed) is given back after checkout_timeout_seconds."""
    app, fake = fake_a_app
    fake.release_failures = 0
    old = utcnow() - timedelta(seconds=app.state.settings.checkout_timeout_seconds + 1)
    async with app.state.sessions() as session, session.begin():
        session.add(Checkout(reservation_id="pay-dead", user_id=1, item_ids="[]", started_at=old))
        session.add(Checkout(reservation_id="pay-alive", user_id=2, item_ids="[]", started_at=utcnow()))
    await app.state.payments._expire_checkouts()
    await app.state.payments._release_pending()
    assert fake.released == ["pay-dead"]
    async with app.state.sessions() as session:
        left = (await session.execute(select(Checkout.reservation_id))).scalars().all()
    assert left == ["pay-alive"]


async def test_pay_with_idempotency_key_pays_once(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    """A retried payment with the same Idempotency-Key gets the first order back
    (B's answer is kept in its database, so this holds across gateway restarts)."""
    user = next_id()
    tea = await shop.product(quantity=10, price_cents=250)
    await shop.add(user, tea, 2)
    first = await client.post("/order/pay", json={"user_id": user}, headers={"Idempotency-Key": "pay-1"})
    assert first.status_code == 200, first.text
    again = await client.post("/order/pay", json={"user_id": user}, headers={"Idempotency-Key": "pay-1"})
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["idempotency-replayed"] == "true"
    assert await count(app, Order) == 1
    assert await shop.quantity(tea) == 8
    # Without the key, the now empty cart cannot be paid.
    assert_error(await client.post("/order/pay", json={"user_id": user}), 400, "FAILED_PRECONDITION", contains="empty")


async def test_failed_pay_with_idempotency_key_may_be_retried(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user, a = next_id(), await shop.product(quantity=5)
    await shop.add(user, a, 3)
    await shop.a.post("/stock/update", json={"product_id": a, "quantity": 2})
    headers = {"Idempotency-Key": "pay-2"}
    assert_error(await client.post("/order/pay", json={"user_id": user}, headers=headers), 400, "FAILED_PRECONDITION")
    await assert_nothing_written(app)
    await shop.a.post("/stock/update", json={"product_id": a, "quantity": 5})
    resp = await client.post("/order/pay", json={"user_id": user}, headers=headers)
    assert resp.status_code == 200, resp.text
    assert "idempotency-replayed" not in resp.headers
    assert await shop.quantity(a) == 2
