"""Ownership on A: with the identity assertion the gateway sends, adding to or
reading another user's master cart is 403 unless the caller is an admin (a
user with shop:admin, or a service with it: the tests' own client)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from shopkit.db import Outbox
from shopkit_testing import as_admin, as_user, assert_error
from tests.support import create_stock

USER = 10
OWNER, OTHER, ADMIN, SERVICE = "owner", "other user", "admin", "service with shop:admin"
HEADERS = {
    OWNER: as_user(USER, "openid"),
    OTHER: as_user(USER + 1, "openid"),
    ADMIN: as_admin(USER + 1),
    SERVICE: {},  # the client fixture sends its own identity
}
CASES = [(OWNER, True), (OTHER, False), (ADMIN, True), (SERVICE, True)]


async def events(app: FastAPI) -> int:
    async with app.state.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Outbox))).scalar_one())


async def cart(client: AsyncClient) -> list[dict]:
    resp = await client.get(f"/cart/fallback/{USER}")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


@pytest.mark.parametrize(("who", "allowed"), CASES)
async def test_add_to_cart(client: AsyncClient, app: FastAPI, who: str, allowed: bool) -> None:
    await create_stock(client, 5)
    resp = await client.post("/cart/add", json={"user_id": USER, "product_id": 5, "quantity": 1}, headers=HEADERS[who])
    if allowed:
        assert resp.status_code == 201, resp.text
        assert [i["item_id"] for i in await cart(client)] == [resp.json()["item_id"]]
        assert await events(app) == 1
    else:
        assert_error(resp, 403, "PERMISSION_DENIED", contains=f"user {USER}")
        assert await cart(client) == []
        assert await events(app) == 0


@pytest.mark.parametrize(("who", "allowed"), CASES)
async def test_fallback_cart(client: AsyncClient, who: str, allowed: bool) -> None:
    await create_stock(client, 5)
    added = await client.post("/cart/add", json={"user_id": USER, "product_id": 5, "quantity": 1})
    want = {"user_id": USER, "items": [added.json()]}
    for resp in (
        await client.post("/cart/fallback", json={"user_id": USER}, headers=HEADERS[who]),
        await client.get(f"/cart/fallback/{USER}", headers=HEADERS[who]),
    ):
        if allowed:
            assert (resp.status_code, resp.json()) == (200, want)
        else:
            assert_error(resp, 403, "PERMISSION_DENIED", contains=f"user {USER}")
