"""Liveness, readiness and the error body of unknown paths and methods."""

from __future__ import annotations

from httpx import AsyncClient

from shopkit_testing import assert_error


async def test_healthz(client: AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


async def test_readyz(client: AsyncClient) -> None:
    resp = await client.get("/readyz")
    body = resp.json()
    assert resp.status_code == 200
    assert (body["status"], body["database"], body["kafka"], body["outbox_pending"]) == (
        "ready",
        "ok",
        "disconnected",
        0,
    )


async def test_unknown_path_and_method(client: AsyncClient) -> None:
    assert_error(await client.get("/nope"), 404, "NOT_FOUND")
    resp = await client.put("/order/pay")
    assert resp.status_code == 405 and resp.json()["code"] == "UNIMPLEMENTED"
