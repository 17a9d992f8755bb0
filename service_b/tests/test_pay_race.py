"""Concurrent payments against real uvicorn servers of A and B, each in one
process or in several worker processes (WEB_CONCURRENCY) sharing its database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.db import CartItem
from app.main import MIGRATIONS
from app.models import CartItemPublic
from shopkit import db, migrations
from shopkit_testing import Server, as_service, running
from tests.conftest import next_id
from tests.support import SERVICE_A_DIR, SERVICE_DIR

# Each worker process imports the app on its own: on a loaded machine that
# takes a while.
WORKERS_START_TIMEOUT = 120.0


@contextlib.contextmanager
def service_a_with_workers(workers: int, shared: Server, database_url: str, log: Path) -> Iterator[Server]:
    """The shared service A (one process), or a second A of workers processes
    on the same database: then four processes of A share it."""
    if workers == 1:
        yield shared
        return
    env = {"DATABASE_URL": database_url, "KAFKA_ENABLED": "false", "WEB_CONCURRENCY": str(workers)}
    with running(SERVICE_A_DIR, env, log, WORKERS_START_TIMEOUT) as server:
        yield server


@pytest.mark.parametrize("workers", [1, 3])
async def test_fifty_pays_race_for_ten_units(
    database_url: str,
    service_a: Server,
    a_database_urls: dict[str, str],
    backend: str,
    workers: int,
    tmp_path: Path,
) -> None:
    """50 users with one unit each in their cart pay at once for 10 units on hand:
    exactly 10 orders are PAID, 40 payments fail with FAILED_PRECONDITION, and
    the stock ends at 0, never below; also with A and B each in workers
    processes (their own pools, SQLite's read pool, one writer per process)."""
    with service_a_with_workers(workers, service_a, a_database_urls[backend], tmp_path / "a.log") as a_server:
        await _fifty_pays_race(database_url, a_server, workers, tmp_path)


async def _fifty_pays_race(database_url: str, service_a: Server, workers: int, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=service_a.url, timeout=30, headers=as_service(audience="service_a")) as a:
        pid = next_id()
        created = await a.post(
            "/stock", json={"product_id": pid, "product_name": "scarce", "quantity": 10, "price_cents": 500}
        )
        assert created.status_code == 201, created.text
        users = [next_id() for _ in range(50)]
        items = []
        for user in users:
            resp = await a.post("/cart/add", json={"user_id": user, "product_id": pid, "quantity": 1})
            assert resp.status_code == 201, resp.text
            items.append(CartItemPublic.model_validate(resp.json()))

    # B's read model as its consumer would have built it from A's events.
    engine = db.make_engine(database_url)
    await migrations.upgrade(engine, MIGRATIONS)
    async with db.make_session_factory(engine)() as session, session.begin():
        session.add_all(CartItem(**i.model_dump()) for i in items)
    await engine.dispose()

    env = {
        "DATABASE_URL": database_url,
        "SERVICE_A_URL": service_a.url,
        "KAFKA_ENABLED": "false",
        "WEB_CONCURRENCY": str(workers),
    }
    with running(SERVICE_DIR, env, tmp_path / "b.log", WORKERS_START_TIMEOUT) as b_server:
        async with httpx.AsyncClient(base_url=b_server.url, timeout=60, headers=as_service()) as b:
            results = await asyncio.gather(*(b.post("/order/pay", json={"user_id": u}) for u in users))
            codes = [r.status_code for r in results]
            assert (codes.count(200), codes.count(400)) == (10, 40), f"{codes}\n{b_server.log_tail()}"
            assert {r.json()["code"] for r in results if r.status_code == 400} == {"FAILED_PRECONDITION"}
            paid = [r.json() for r in results if r.status_code == 200]
            assert all(o["status"] == "ORDER_STATUS_PAID" and o["total_cents"] == 500 for o in paid)

            async with httpx.AsyncClient(base_url=service_a.url, headers=as_service(audience="service_a")) as a:
                assert (await a.get(f"/stock/{pid}")).json()["quantity"] == 0
            paid_users = {o["user_id"] for o in paid}
            for user in users:
                cart = (await b.get(f"/cart/{user}")).json()["items"]
                orders = (await b.get("/order", params={"user_id": user})).json()["orders"]
                want = (0, 1) if user in paid_users else (1, 0)
                assert (len(cart), len(orders)) == want, user
