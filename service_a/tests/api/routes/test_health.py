"""Liveness, readiness and the error body of unknown paths and methods."""

from __future__ import annotations

import asyncio

from httpx import ASGITransport, AsyncClient

from app.main import create_app
from app.settings import Settings
from shopkit_testing import TEST_IDENTITY, as_service, assert_error, free_port
from tests.support import create_stock


async def test_healthz(client: AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


async def test_readyz_without_kafka(client: AsyncClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["status"], body["database"], body["kafka"], body["outbox_pending"]) == (
        "ready",
        "ok",
        "disconnected",
        0,
    )


async def test_readyz_broker_down_keeps_serving(settings: Settings) -> None:
    """Kafka enabled but unreachable: requests succeed, events wait in the outbox, /readyz stays 200."""
    down = settings.model_copy(update={"kafka_enabled": True, "kafka_brokers": f"127.0.0.1:{free_port()}"})
    app = create_app(down)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://a", headers=as_service()) as client,
    ):
        await create_stock(client, 1)
        resp = await client.post("/cart/add", json={"user_id": 1, "product_id": 1, "quantity": 1})
        assert resp.status_code == 201
        await asyncio.sleep(0.5)
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert (ready.json()["kafka"], ready.json()["outbox_pending"]) == ("disconnected", 1)


async def test_readyz_database_down(tmp_path) -> None:
    app = create_app(Settings(database_url=f"{tmp_path}/a.db", kafka_enabled=False, **TEST_IDENTITY.settings()))
    async with app.router.lifespan_context(app):
        await app.state.engine.dispose()
        (tmp_path / "a.db").unlink()
        (tmp_path / "a.db").mkdir()  # a directory where the database file was: cannot open
        async with AsyncClient(
            transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://a", headers=as_service()
        ) as client:
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()["database"]) == (503, "unreachable")
            assert_error(await client.get("/stock/1"), 503, "UNAVAILABLE")
            assert (await client.get("/healthz")).status_code == 200


async def test_unknown_path_and_method(client: AsyncClient) -> None:
    assert_error(await client.get("/nope"), 404, "NOT_FOUND")
    resp = await client.patch("/stock/1")
    assert resp.status_code == 405 and resp.json()["code"] == "UNIMPLEMENTED"
