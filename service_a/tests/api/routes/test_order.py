"""ProcessOrderStock and the reservation extension used by service B."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from httpx import AsyncClient

from shopkit_testing import as_service, assert_error, running
from tests.support import SERVICE_DIR, create_stock


async def quantities(client: AsyncClient, *ids: int) -> list[int]:
    return [(await client.get(f"/stock/{i}")).json()["quantity"] for i in ids]


async def test_process_stock(client: AsyncClient) -> None:
    await create_stock(client, 1, quantity=5, price_cents=100)
    await create_stock(client, 2, quantity=5, price_cents=250)
    resp = await client.post(
        "/order/process_stock", json={"items": [{"product_id": "2", "quantity": 2}, {"product_id": 1, "quantity": "5"}]}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "items": [
            {"product_id": 2, "product_name": "product 2", "quantity": 3, "price_cents": 250},
            {"product_id": 1, "product_name": "product 1", "quantity": 0, "price_cents": 100},
        ]
    }
    assert await quantities(client, 1, 2) == [0, 3]


async def test_process_stock_sums_lines_of_one_product(client: AsyncClient) -> None:
    await create_stock(client, 1, quantity=5, price_cents=100)
    await create_stock(client, 2, quantity=5, price_cents=250)
    lines = [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 1}, {"product_id": "1", "quantity": 2}]
    resp = await client.post("/order/process_stock", json={"items": lines})
    assert resp.status_code == 200, resp.text
    assert [(i["product_id"], i["quantity"]) for i in resp.json()["items"]] == [(1, 2), (2, 4)]
    assert await quantities(client, 1, 2) == [2, 4]
    # The sum is checked against the stock as one line: 2 + 1 > 2 on hand.
    lines = [{"product_id": 1, "quantity": 2}, {"product_id": 1, "quantity": 1}]
    assert_error(await client.post("/order/process_stock", json={"items": lines}), 400, "FAILED_PRECONDITION")
    assert await quantities(client, 1, 2) == [2, 4]


async def test_process_stock_all_or_nothing(client: AsyncClient) -> None:
    await create_stock(client, 1, quantity=5)
    await create_stock(client, 2, quantity=1)
    resp = await client.post(
        "/order/process_stock", json={"items": [{"product_id": 1, "quantity": 5}, {"product_id": 2, "quantity": 2}]}
    )
    assert_error(resp, 400, "FAILED_PRECONDITION", contains="product 2")
    resp = await client.post(
        "/order/process_stock", json={"items": [{"product_id": 1, "quantity": 1}, {"product_id": 3, "quantity": 1}]}
    )
    assert_error(resp, 404, "NOT_FOUND", contains="3")
    assert await quantities(client, 1, 2) == [5, 1]


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        pytest.param({"items": []}, "empty", id="empty"),
        pytest.param({}, "items", id="missing items"),
        pytest.param({"items": [{"product_id": 1, "quantity": 0}]}, "quantity", id="zero quantity"),
        pytest.param({"items": [{"product_id": 1, "quantity": -2}]}, "quantity", id="negative quantity"),
        pytest.param({"items": [{"product_id": 0, "quantity": 1}]}, "product_id", id="zero product"),
    ],
)
async def test_process_stock_invalid(client: AsyncClient, body: dict, contains: str) -> None:
    await create_stock(client, 1, quantity=5)
    assert_error(await client.post("/order/process_stock", json=body), 422, "INVALID_ARGUMENT", contains=contains)
    assert await quantities(client, 1) == [5]


async def test_reservation_is_idempotent_and_releasable(client: AsyncClient) -> None:
    await create_stock(client, 1, quantity=5)
    body = {"items": [{"product_id": 1, "quantity": 2}], "reservation_id": "pay-1"}
    first = await client.post("/order/process_stock", json=body)
    again = await client.post("/order/process_stock", json=body)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert await quantities(client, 1) == [3]

    released = await client.post("/order/release_stock", json={"reservation_id": "pay-1"})
    assert released.json() == {"reservation_id": "pay-1", "released": True, "items": [{"product_id": 1, "quantity": 2}]}
    twice = await client.post("/order/release_stock", json={"reservation_id": "pay-1"})
    assert twice.json()["released"] is False
    assert await quantities(client, 1) == [5]
    # A released reservation can never take stock again.
    assert_error(await client.post("/order/process_stock", json=body), 400, "FAILED_PRECONDITION", contains="released")


async def test_release_before_process_blocks_the_late_request(client: AsyncClient) -> None:
    await create_stock(client, 1, quantity=5)
    resp = await client.post("/order/release_stock", json={"reservation_id": "pay-late"})
    assert resp.json() == {"reservation_id": "pay-late", "released": False, "items": []}
    late = await client.post(
        "/order/process_stock", json={"items": [{"product_id": 1, "quantity": 2}], "reservation_id": "pay-late"}
    )
    assert_error(late, 400, "FAILED_PRECONDITION")
    assert await quantities(client, 1) == [5]


async def test_concurrent_in_process(client: AsyncClient) -> None:
    await create_stock(client, 1, quantity=10)
    body = {"items": [{"product_id": 1, "quantity": 1}]}
    results = await asyncio.gather(*(client.post("/order/process_stock", json=body) for _ in range(30)))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 10 + [400] * 20
    assert await quantities(client, 1) == [0]


async def test_concurrent_against_uvicorn(database_url: str, tmp_path: Path) -> None:
    """50 concurrent decrements of one unit race for 10 units on a real server."""
    with running(SERVICE_DIR, {"DATABASE_URL": database_url, "KAFKA_ENABLED": "false"}, tmp_path / "a.log") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=as_service()) as http:
            await create_stock(http, 1, quantity=10)
            await create_stock(http, 2, quantity=1000)
            # Each call takes one unit of product 1 and one of product 2, in both orders,
            # so rows are locked in opposite request orders.
            bodies = [
                {"items": [{"product_id": a, "quantity": 1}, {"product_id": b, "quantity": 1}]}
                for a, b in [(1, 2), (2, 1)] * 25
            ]
            results = await asyncio.gather(*(http.post("/order/process_stock", json=b) for b in bodies))
            codes = [r.status_code for r in results]
            assert (codes.count(200), codes.count(400)) == (10, 40), server.log_tail()
            assert all(r.json()["code"] == "FAILED_PRECONDITION" for r in results if r.status_code == 400)
            assert await quantities(http, 1, 2) == [0, 990]
