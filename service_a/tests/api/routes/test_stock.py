"""StockService endpoints."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from shopkit_testing import assert_error
from tests.support import create_stock


async def test_create_and_get(client: AsyncClient) -> None:
    resp = await client.post(
        "/stock", json={"product_id": "42", "product_name": "Tea", "quantity": 5, "price_cents": "1999"}
    )
    assert resp.status_code == 201, resp.text
    want = {"product_id": 42, "product_name": "Tea", "quantity": 5, "price_cents": 1999}
    assert resp.json() == want
    got = await client.get("/stock/42")
    assert (got.status_code, got.json()) == (200, want)


async def test_create_duplicate(client: AsyncClient) -> None:
    await create_stock(client, 1)
    resp = await client.post("/stock", json={"product_id": 1, "product_name": "x", "quantity": 1, "price_cents": 1})
    assert_error(resp, 409, "ALREADY_EXISTS", contains="product 1")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"product_name": "x", "quantity": 1, "price_cents": 1}, "product_id", id="missing id"),
        pytest.param({"product_id": 1, "quantity": 1, "price_cents": 1}, "product_name", id="missing name"),
        pytest.param(
            {"product_id": 0, "product_name": "x", "quantity": 1, "price_cents": 1}, "product_id", id="zero id"
        ),
        pytest.param(
            {"product_id": "x1", "product_name": "x", "quantity": 1, "price_cents": 1},
            "product_id",
            id="non-numeric id",
        ),
        pytest.param(
            {"product_id": True, "product_name": "x", "quantity": 1, "price_cents": 1}, "product_id", id="bool id"
        ),
        pytest.param(
            {"product_id": 1, "product_name": "", "quantity": 1, "price_cents": 1}, "product_name", id="empty name"
        ),
        pytest.param(
            {"product_id": 1, "product_name": "x", "quantity": -1, "price_cents": 1}, "quantity", id="negative quantity"
        ),
        pytest.param(
            {"product_id": 1, "product_name": "x", "quantity": 1.5, "price_cents": 1},
            "quantity",
            id="fractional quantity",
        ),
        pytest.param(
            {"product_id": 1, "product_name": "x", "quantity": 1, "price_cents": -5}, "price_cents", id="negative price"
        ),
    ],
)
async def test_create_invalid(client: AsyncClient, body: dict[str, Any], field: str) -> None:
    resp = await client.post("/stock", json=body)
    err = assert_error(resp, 422, "INVALID_ARGUMENT", contains=f"{field}:")
    assert isinstance(err["detail"], list) and err["detail"]
    assert (await client.get("/stock")).json()["items"] == []


@pytest.mark.parametrize("name", ["a\x00b", "tea\n", "\x1b[31mred"])
async def test_control_characters_refused(client: AsyncClient, name: str) -> None:
    # On PostgreSQL a NUL would reach the database and fail there (500);
    # the model refuses it, and every other control character, on both.
    resp = await client.post("/stock", json={"product_id": 1, "product_name": name, "quantity": 1, "price_cents": 1})
    assert_error(resp, 422, "INVALID_ARGUMENT", contains="product_name:")
    assert (await client.get("/stock")).json()["items"] == []
    await create_stock(client, 2)
    before = (await client.get("/stock/2")).json()
    resp = await client.put("/stock/2", json={"product_name": name, "quantity": 1, "price_cents": 1})
    assert_error(resp, 422, "INVALID_ARGUMENT", contains="product_name:")
    assert (await client.get("/stock/2")).json() == before


async def test_create_not_json(client: AsyncClient) -> None:
    resp = await client.post("/stock", content=b"{nope", headers={"content-type": "application/json"})
    assert_error(resp, 422, "INVALID_ARGUMENT")


async def test_get_unknown_and_bad_id(client: AsyncClient) -> None:
    assert_error(await client.get("/stock/999"), 404, "NOT_FOUND", contains="999")
    assert_error(await client.get("/stock/abc"), 422, "INVALID_ARGUMENT", contains="product_id")
    assert_error(await client.get("/stock/0"), 422, "INVALID_ARGUMENT", contains="product_id")


async def test_list_pages(client: AsyncClient) -> None:
    for pid in (5, 3, 1, 4, 2):
        await create_stock(client, pid)
    seen, token, pages = [], "", 0
    while True:
        resp = await client.get("/stock", params={"page_size": "2", "page_token": token})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        seen += [i["product_id"] for i in body["items"]]
        token, pages = body["next_page_token"], pages + 1
        if not token:
            break
    assert (seen, pages) == ([1, 2, 3, 4, 5], 3)


@pytest.mark.parametrize("page_size", ["", "0", "5000"])
async def test_list_default_and_capped_page_size(client: AsyncClient, page_size: str) -> None:
    for pid in range(1, 4):
        await create_stock(client, pid)
    resp = await client.get("/stock", params={"page_size": page_size, "page_token": ""})
    assert resp.status_code == 200
    assert [i["product_id"] for i in resp.json()["items"]] == [1, 2, 3]
    assert resp.json()["next_page_token"] == ""


async def test_list_default_page_size_is_50(client: AsyncClient) -> None:
    for pid in range(1, 53):
        await create_stock(client, pid)
    body = (await client.get("/stock")).json()
    assert len(body["items"]) == 50 and body["next_page_token"]
    rest = (await client.get("/stock", params={"page_token": body["next_page_token"]})).json()
    assert [i["product_id"] for i in rest["items"]] == [51, 52] and rest["next_page_token"] == ""


async def test_list_long_tokens(client: AsyncClient) -> None:
    for product_id in (1, 2, 3):
        await create_stock(client, product_id)
    # Leading zeros are the same place; a number past every id, however
    # long (int() alone refuses over 4,300 digits), is an empty page.
    resp = await client.get("/stock", params={"page_token": "0" * 5000 + "1"})
    assert resp.status_code == 200, resp.text
    assert [i["product_id"] for i in resp.json()["items"]] == [2, 3]
    for token in ("9" * 20, "9" * 5000):
        resp = await client.get("/stock", params={"page_token": token})
        assert (resp.status_code, resp.json()["items"]) == (200, []), resp.text


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"page_token": "garbage!"}, id="garbage token"),
        pytest.param({"page_token": "c3RvY2s6eA"}, id="token not decimal digits"),
        pytest.param({"page_token": "-1"}, id="negative token"),
        pytest.param({"page_token": "\u0663"}, id="non-ASCII digit"),
        pytest.param({"page_size": "-1"}, id="negative size"),
        pytest.param({"page_size": "ten"}, id="non-numeric size"),
    ],
)
async def test_list_bad_params(client: AsyncClient, params: dict[str, str]) -> None:
    assert_error(await client.get("/stock", params=params), 400, "INVALID_ARGUMENT")


async def test_update(client: AsyncClient) -> None:
    await create_stock(client, 7)
    for body_id in (0, "7", None):
        body = {"product_name": "New", "quantity": "3", "price_cents": 250}
        if body_id is not None:
            body["product_id"] = body_id
        resp = await client.put("/stock/7", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"product_id": 7, "product_name": "New", "quantity": 3, "price_cents": 250}


async def test_update_errors(client: AsyncClient) -> None:
    await create_stock(client, 7)
    body = {"product_id": 8, "product_name": "x", "quantity": 1, "price_cents": 1}
    assert_error(await client.put("/stock/7", json=body), 400, "INVALID_ARGUMENT", contains="differs")
    body["product_id"] = 0
    assert_error(await client.put("/stock/8", json=body), 404, "NOT_FOUND", contains="8")
    assert_error(await client.put("/stock/7", json={"product_id": 7}), 422, "INVALID_ARGUMENT", contains="product_name")


async def test_delete(client: AsyncClient) -> None:
    item = await create_stock(client, 9, quantity=4)
    resp = await client.delete("/stock/9")
    assert (resp.status_code, resp.json()) == (200, item)
    assert_error(await client.get("/stock/9"), 404, "NOT_FOUND")
    assert_error(await client.delete("/stock/9"), 404, "NOT_FOUND")


async def test_set_stock_level(client: AsyncClient) -> None:
    await create_stock(client, 3, quantity=1)
    resp = await client.post("/stock/update", json={"product_id": "3", "quantity": "0"})
    assert (resp.status_code, resp.json()["quantity"]) == (200, 0)
    assert_error(
        await client.post("/stock/update", json={"product_id": 3, "quantity": -1}),
        400,
        "INVALID_ARGUMENT",
        contains="negative",
    )
    assert_error(await client.post("/stock/update", json={"product_id": 4, "quantity": 1}), 404, "NOT_FOUND")
    assert_error(
        await client.post("/stock/update", json={"product_id": 3}), 422, "INVALID_ARGUMENT", contains="quantity"
    )
    assert (await client.get("/stock/3")).json()["quantity"] == 0


@pytest.mark.parametrize(
    ("token", "want"),
    [
        pytest.param("2", [3, 4], id="after an id"),
        pytest.param("0002", [3, 4], id="leading zeros"),
        pytest.param("0", [1, 2, 3, 4], id="zero: from the start"),
        pytest.param("99", [], id="past the last id"),
        pytest.param("9" * 40, [], id="past the int64 range"),
    ],
)
async def test_list_any_decimal_token_continues_after_that_id(client: AsyncClient, token: str, want: list[int]) -> None:
    for pid in range(1, 5):
        await create_stock(client, pid)
    resp = await client.get("/stock", params={"page_token": token})
    assert resp.status_code == 200, resp.text
    assert [i["product_id"] for i in resp.json()["items"]] == want
