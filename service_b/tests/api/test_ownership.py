"""Ownership on B: with the identity assertion the gateway sends, another
user's cart item or order is 404 (as if it did not exist) and another user's
cart or orders 403, unless the caller is an admin (a user with shop:admin, or
the tests' own client, a service with it); without a valid assertion every
route is 401."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from shopkit.db import Outbox
from shopkit_testing import as_admin, as_user, assert_error, forged_assertions
from tests.conftest import Shop, next_id

OWNER, OTHER, ADMIN, SERVICE = "owner", "other user", "admin", "service with shop:admin"


def headers_of(who: str, owner: int) -> dict[str, str]:
    """The headers of a call by who, for a resource of user owner."""
    return {
        OWNER: as_user(owner, "openid"),
        OTHER: as_user(owner + 1, "openid"),
        ADMIN: as_admin(owner + 1),
        SERVICE: {},  # the client fixture sends its own identity
    }[who]


async def events(app: FastAPI) -> int:
    async with app.state.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Outbox))).scalar_one())


async def paid_order(client: AsyncClient, shop: Shop, user: int) -> dict[str, Any]:
    await shop.add(user, await shop.product())
    resp = await client.post("/order/pay", json={"user_id": user}, headers=as_user(user))
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize(("who", "allowed"), [(OWNER, True), (OTHER, False), (ADMIN, True), (SERVICE, True)])
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


@pytest.mark.parametrize(("who", "allowed"), [(OWNER, True), (OTHER, False), (ADMIN, True), (SERVICE, True)])
async def test_get_order(client: AsyncClient, shop: Shop, who: str, allowed: bool) -> None:
    user = next_id()
    order = await paid_order(client, shop, user)
    resp = await client.get(f"/order/{order['order_id']}", headers=headers_of(who, user))
    if allowed:
        assert (resp.status_code, resp.json()) == (200, order)
    else:
        body = assert_error(resp, 404, "NOT_FOUND")
        assert body == {"code": "NOT_FOUND", "message": f"order {order['order_id']} not found"}


@pytest.mark.parametrize(("who", "allowed"), [(OWNER, True), (OTHER, False), (ADMIN, True), (SERVICE, True)])
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


@pytest.mark.parametrize(("who", "allowed"), [(OWNER, True), (OTHER, False), (ADMIN, True), (SERVICE, True)])
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
    ("name", "headers"), forged_assertions("service_b"), ids=lambda v: v if isinstance(v, str) else ""
)
async def test_forged_identity(
    bare_client: AsyncClient, shop: Shop, app: FastAPI, name: str, headers: list[tuple[str, str]]
) -> None:
    """Whatever identity headers say, without a valid assertion every route
    is 401 and nothing is read or written."""
    user = next_id()
    item = await shop.add(user, await shop.product())
    for resp in (
        await bare_client.delete(f"/cart/{item['item_id']}", headers=headers),
        await bare_client.get(f"/cart/{user}", headers=headers),
        await bare_client.post("/order/pay", json={"user_id": user}, headers=headers),
    ):
        assert_error(resp, 401, "UNAUTHENTICATED")
        assert resp.headers["www-authenticate"].startswith("IdentityAssertion"), name
    assert (await bare_client.get(f"/cart/{user}", headers=as_user(user))).json()["items"] == [item]
    assert await events(app) == 0


async def test_user_id_header_is_ignored(client: AsyncClient, shop: Shop) -> None:
    """X-User-Id next to a valid assertion changes nothing: the assertion's
    user acts, and another user's item stays hidden."""
    user = next_id()
    item = await shop.add(user, await shop.product())
    spoofed = {**as_user(user + 1), "X-User-Id": str(user), "X-Auth-Scopes": "shop:admin"}
    assert_error(await client.delete(f"/cart/{item['item_id']}", headers=spoofed), 404, "NOT_FOUND")
    assert_error(await client.get(f"/cart/{user}", headers=spoofed), 403, "PERMISSION_DENIED")
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
