"""Ownership on B: with the identity headers the gateway sends, another
user's cart item or order is 404 (as if it did not exist) and another user's
cart or orders 403, unless the caller is an admin; a call without X-User-Id is
internal and not restricted; a malformed header is 400 on every route."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from shopkit.db import Outbox
from shopkit.testing import as_admin, as_user, assert_error
from tests.conftest import Shop, next_id

OWNER, OTHER, ADMIN, INTERNAL = "owner", "other user", "admin", "internal"


def headers_of(who: str, owner: int) -> dict[str, str]:
    """The headers of a call by who, for a resource of user owner."""
    return {
        OWNER: as_user(owner, "openid"),
        OTHER: as_user(owner + 1, "openid"),
        ADMIN: as_admin(owner + 1),
        INTERNAL: {},
    }[who]


async def events(app: FastAPI) -> int:
    async with app.state.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Outbox))).scalar_one())


async def paid_order(client: AsyncClient, shop: Shop, user: int) -> dict[str, Any]:
    await shop.add(user, await shop.product())
    resp = await client.post("/order/pay", json={"user_id": user}, headers=as_user(user))
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize(("who", "allowed"), [(OWNER, True), (OTHER, False), (ADMIN, True), (INTERNAL, True)])
async def test_remove_cart_item(client: AsyncClient, shop: Shop, app: FastAPI, who: str, allowed: bool) -> None:
    user = next_id()
    item = await shop.add(user, await shop.product())
    resp = await client.delete(f"/cart/{item['item_id']}", headers=headers_of(who, user))
    if allowed:
        assert (resp.status_code, resp.json()) == (200, item)
        assert (await client.get(f"/cart/{user}")).json()["items"] == []
        assert await events(app) == 1
        return
    # The same answer as for an item that does not exist, and nothing changed.
    body = assert_error(resp, 404, "NOT_FOUND")
    assert body == {"code": "NOT_FOUND", "message": f"cart item {item['item_id']} not found"}
    assert (await client.get(f"/cart/{user}")).json()["items"] == [item]
    assert await events(app) == 0


@pytest.mark.parametrize(("who", "allowed"), [(OWNER, True), (OTHER, False), (ADMIN, True), (INTERNAL, True)])
async def test_get_order(client: AsyncClient, shop: Shop, who: str, allowed: bool) -> None:
    user = next_id()
    order = await paid_order(client, shop, user)
    resp = await client.get(f"/order/{order['order_id']}", headers=headers_of(who, user))
    if allowed:
        assert (resp.status_code, resp.json()) == (200, order)
    else:
        body = assert_error(resp, 404, "NOT_FOUND")
        assert body == {"code": "NOT_FOUND", "message": f"order {order['order_id']} not found"}


@pytest.mark.parametrize(("who", "allowed"), [(OWNER, True), (OTHER, False), (ADMIN, True), (INTERNAL, True)])
async def test_user_addressed_reads(client: AsyncClient, shop: Shop, who: str, allowed: bool) -> None:
    user = next_id()
    item = await shop.add(user, await shop.product())
    headers = headers_of(who, user)
    for path, want in (
        (f"/cart?user_id={user}", {"user_id": user, "items": [item]}),
        (f"/cart/{user}", {"user_id": user, "items": [item]}),
        (f"/order?user_id={user}", {"orders": []}),
    ):
        resp = await client.get(path, headers=headers)
        if allowed:
            assert (resp.status_code, resp.json()) == (200, want), path
        else:
            assert_error(resp, 403, "PERMISSION_DENIED", contains=f"user {user}")


@pytest.mark.parametrize(("who", "allowed"), [(OWNER, True), (OTHER, False), (ADMIN, True), (INTERNAL, True)])
async def test_pay(client: AsyncClient, shop: Shop, app: FastAPI, who: str, allowed: bool) -> None:
    user, pid = next_id(), await shop.product(quantity=5)
    item = await shop.add(user, pid, 2)
    resp = await client.post("/order/pay", json={"user_id": user}, headers=headers_of(who, user))
    if allowed:
        assert resp.status_code == 200, resp.text
        assert resp.json()["user_id"] == user
        return
    assert_error(resp, 403, "PERMISSION_DENIED", contains=f"user {user}")
    assert (await client.get(f"/cart/{user}")).json()["items"] == [item]
    assert await shop.quantity(pid) == 5
    assert await events(app) == 0


@pytest.mark.parametrize(
    ("headers", "contains"),
    [
        ({"X-User-Id": "abc"}, "X-User-Id"),
        ({"X-User-Id": ""}, "X-User-Id"),
        ({"X-User-Id": "0"}, "X-User-Id"),
        ({"X-User-Id": "-7"}, "X-User-Id"),
        ({"X-User-Id": "+7"}, "X-User-Id"),
        ({"X-User-Id": "007"}, "X-User-Id"),
        ({"X-User-Id": "7.0"}, "X-User-Id"),
        ({"X-User-Id": "9223372036854775808"}, "X-User-Id"),  # INT64_MAX + 1
        ({"X-User-Id": "7", "X-Auth-Scopes": "shop:admin \x7f"}, "X-Auth-Scopes"),
        ({"X-User-Id": "7", "X-Auth-Scopes": 'shop:admin "x"'}, "X-Auth-Scopes"),
        ({"X-User-Id": "7", "X-Auth-Scopes": "a" * 4097}, "X-Auth-Scopes"),
    ],
)
async def test_malformed_identity(
    client: AsyncClient, shop: Shop, app: FastAPI, headers: dict[str, str], contains: str
) -> None:
    user = next_id()
    item = await shop.add(user, await shop.product())
    assert_error(
        await client.delete(f"/cart/{item['item_id']}", headers=headers), 400, "INVALID_ARGUMENT", contains=contains
    )
    assert_error(await client.get(f"/cart/{user}", headers=headers), 400, "INVALID_ARGUMENT", contains=contains)
    assert (await client.get(f"/cart/{user}")).json()["items"] == [item]
    assert await events(app) == 0


async def test_repeated_user_id_header(client: AsyncClient, shop: Shop) -> None:
    user = next_id()
    item = await shop.add(user, await shop.product())
    headers = [("X-User-Id", str(user + 1)), ("X-User-Id", str(user))]
    assert_error(
        await client.delete(f"/cart/{item['item_id']}", headers=headers), 400, "INVALID_ARGUMENT", contains="once"
    )
    assert (await client.get(f"/cart/{user}")).json()["items"] == [item]


async def test_valid_max_user_id(client: AsyncClient) -> None:
    user = 2**63 - 1
    resp = await client.get(f"/cart/{user}", headers=as_user(user))
    assert (resp.status_code, resp.json()) == (200, {"user_id": user, "items": []})


async def test_idempotency_key_does_not_replay_to_another_user(client: AsyncClient, shop: Shop, app: FastAPI) -> None:
    user = next_id()
    item = await shop.add(user, await shop.product())
    path, key = f"/cart/{item['item_id']}", {"Idempotency-Key": "rm-shared"}
    first = await client.delete(path, headers={**as_user(user), **key})
    assert (first.status_code, first.json()) == (200, item)
    # Another user's same key is a different key: their request runs as
    # their own (the item is not theirs: 404), with neither the stored
    # answer nor a hint that the key was used.
    other = await client.delete(path, headers={**as_user(user + 1), **key})
    assert_error(other, 404, "NOT_FOUND")
    assert "idempotency-replayed" not in other.headers
    again = await client.delete(path, headers={**as_user(user), **key})
    assert (again.status_code, again.json(), again.headers["idempotency-replayed"]) == (200, item, "true")
    assert await events(app) == 1
