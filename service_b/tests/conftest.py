"""Fixtures: an app of B per test on a fresh database (SQLite always,
PostgreSQL too when TEST_DATABASE_URL_B is set), talking to a real service A
run as a uvicorn process for the whole session (on TEST_DATABASE_URL_A when
set, else SQLite)."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.main import create_app
from app.settings import Settings
from shopkit_testing import (
    TEST_IDENTITY,
    Server,
    as_service,
    bare_client,  # noqa: F401 - the same without an identity of its own
    client,  # noqa: F401 - the fixture of an in-process HTTP client of app
    database_backends,
    event_record,
    fresh_database_url,
    start_server,
    started,
    use_audience,
)
from tests.support import SERVICE_A_DIR

PG_ENV_A = "TEST_DATABASE_URL_A"
PG_ENV_B = "TEST_DATABASE_URL_B"
use_audience("service_b")

# Product and user ids unique within the session: service A's database lives as long as the session.
_ids = itertools.count(int(time.time()) % 100_000 * 1000 + 1)


def next_id() -> int:
    """An id no other test of this session uses."""
    return next(_ids)


@pytest.fixture(params=database_backends(PG_ENV_B))
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this test run: "sqlite" or "postgres"."""
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> str:
    """A fresh database for B."""
    return await fresh_database_url(PG_ENV_B if backend == "postgres" else None, tmp_path / "service_b.db")


@pytest.fixture(scope="session")
def a_database_urls() -> dict[str, str]:
    """The database of the shared service A of each backend (see service_a)."""
    return {}


@pytest.fixture(scope="session")
def a_servers() -> Iterator[dict[str, Server]]:
    """Service A processes by backend, started on first use."""
    servers: dict[str, Server] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
async def service_a(
    backend: str,
    a_servers: dict[str, Server],
    a_database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Server:
    """A real service A (no Kafka) for the test's backend."""
    if backend not in a_servers:
        folder = tmp_path_factory.mktemp(f"service_a_{backend}")
        url = await fresh_database_url(PG_ENV_A if backend == "postgres" else None, folder / "service_a.db")
        a_database_urls[backend] = url
        a_servers[backend] = start_server(
            SERVICE_A_DIR, {"DATABASE_URL": url, "KAFKA_ENABLED": "false"}, folder / "a.log"
        )
    server = a_servers[backend]
    assert server.process.poll() is None, server.log_tail()
    return server


@pytest.fixture
def settings(database_url: str, service_a: Server) -> Settings:
    """Settings of an app without Kafka on the test's database, calling the real A."""
    # The release task runs once at start; tests drive it by hand after that.
    return Settings(
        database_url=database_url,
        kafka_enabled=False,
        service_a_url=service_a.url,
        release_retry_seconds=3600,
        **TEST_IDENTITY.settings(),
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app, started (schema created) and stopped around the test."""
    async with started(create_app(settings)) as application:
        yield application


def cart_event(type_: str, item: dict[str, Any], event_id: str | None = None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record (value, headers) of an event of A's cart-changes topic, as A publishes it."""
    return event_record(type_, {"item": item}, event_id, source="/service-a")


class Shop:
    """Drives service A over HTTP and feeds its cart events to B's consumer."""

    def __init__(self, a: AsyncClient, b_app: FastAPI) -> None:
        self.a = a
        self.b_app = b_app

    async def product(self, quantity: int = 10, price_cents: int = 100) -> int:
        """Create a product on A and return its id."""
        pid = next_id()
        resp = await self.a.post(
            "/stock",
            json={"product_id": pid, "product_name": f"p{pid}", "quantity": quantity, "price_cents": price_cents},
        )
        assert resp.status_code == 201, resp.text
        return pid

    async def add(self, user_id: int, product_id: int, quantity: int = 1) -> dict[str, Any]:
        """Add to the cart on A and apply A's event to B's read model."""
        resp = await self.a.post("/cart/add", json={"user_id": user_id, "product_id": product_id, "quantity": quantity})
        assert resp.status_code == 201, resp.text
        item = resp.json()
        await self.b_app.state.bridge.consumer.apply(*cart_event("cart.item_added", item), "test")
        return item

    async def quantity(self, product_id: int) -> int:
        """Units of product_id on hand at A."""
        return (await self.a.get(f"/stock/{product_id}")).json()["quantity"]


@pytest.fixture
async def shop(service_a: Server, app: FastAPI) -> AsyncIterator[Shop]:
    """A Shop on the test's A and B."""
    async with httpx.AsyncClient(base_url=service_a.url, timeout=10, headers=as_service(audience="service_a")) as a:
        yield Shop(a, app)
