"""Both services as real uvicorn processes on a real broker: carts replicate
from A to B, payments on B clear A's master cart, and a broker outage loses
nothing."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shopkit_testing import (
    Server,
    as_service,
    eventually,
    fresh_database_url,
    local_kafka_script_env,
    missing_dependency,
    start_server,
)
from tests.conftest import PG_ENV_A, next_id
from tests.support import REPO_ROOT, SERVICE_A_DIR, SERVICE_DIR

pytestmark = pytest.mark.integration

KAFKA_SH = REPO_ROOT / "scripts" / "kafka.sh"


@dataclass
class Stack:
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    a_server: Server
    b_server: Server

    def logs(self) -> str:
        return f"--- service A ---\n{self.a_server.log_tail()}\n--- service B ---\n{self.b_server.log_tail()}"

    async def product(self, quantity: int = 100, price_cents: int = 100) -> int:
        pid = next_id()
        resp = await self.a.post(
            "/stock",
            json={"product_id": pid, "product_name": f"p{pid}", "quantity": quantity, "price_cents": price_cents},
        )
        assert resp.status_code == 201, resp.text
        return pid

    async def add(self, user_id: int, product_id: int, quantity: int = 1) -> dict:
        resp = await self.a.post(
            "/cart/add", json={"user_id": str(user_id), "product_id": str(product_id), "quantity": quantity}
        )
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def b_cart_ids(self, user_id: int) -> set[int]:
        return {i["item_id"] for i in (await self.b.get(f"/cart/{user_id}")).json()["items"]}

    async def a_cart_ids(self, user_id: int) -> set[int]:
        return {i["item_id"] for i in (await self.a.get(f"/cart/fallback/{user_id}")).json()["items"]}


@pytest.fixture
async def stack(backend: str, database_url: str, kafka: str, run_id: str, tmp_path: Path) -> AsyncIterator[Stack]:
    a_url = await fresh_database_url(PG_ENV_A if backend == "postgres" else None, tmp_path / "service_a.db")
    common = {
        "KAFKA_ENABLED": "true",
        "KAFKA_BROKERS": kafka,
        "CART_CHANGES_TOPIC": f"test-{run_id}.cart-changes",
        "ORDER_EVENTS_TOPIC": f"test-{run_id}.order-events",
        "KAFKA_RETRY_MAX_SECONDS": "1",
        "OUTBOX_POLL_SECONDS": "0.2",
    }
    a_server = start_server(
        SERVICE_A_DIR, {**common, "DATABASE_URL": a_url, "KAFKA_GROUP_ID": f"test-{run_id}-a"}, tmp_path / "a.log"
    )
    try:
        b_env = {
            **common,
            "DATABASE_URL": database_url,
            "KAFKA_GROUP_ID": f"test-{run_id}-b",
            "SERVICE_A_URL": a_server.url,
        }
        b_server = start_server(SERVICE_DIR, b_env, tmp_path / "b.log")
        try:
            async with (
                httpx.AsyncClient(base_url=a_server.url, timeout=30, headers=as_service(audience="service_a")) as a,
                httpx.AsyncClient(base_url=b_server.url, timeout=30, headers=as_service()) as b,
            ):
                stack = Stack(a, b, a_server, b_server)

                async def both_connected() -> bool:
                    kafka_states = [(await c.get("/readyz")).json()["kafka"] for c in (a, b)]
                    return kafka_states == ["connected", "connected"]

                await eventually(both_connected, 30, "both services connected to Kafka")
                yield stack
        finally:
            b_server.stop()
    finally:
        a_server.stop()


async def test_cart_sync_remove_and_pay(stack: Stack) -> None:
    user, pid = next_id(), await stack.product(quantity=10, price_cents=300)
    first, second = await stack.add(user, pid, 2), await stack.add(user, pid, 1)

    async def b_has_both() -> bool:
        return await stack.b_cart_ids(user) == {first["item_id"], second["item_id"]}

    await eventually(b_has_both, 15, "A's cart items in B's read model")
    assert (await stack.b.get("/cart", params={"user_id": user})).json() == {"user_id": user, "items": [first, second]}

    # Removing on B reaches A's master copy.
    assert (await stack.b.delete(f"/cart/{first['item_id']}")).status_code == 200

    async def a_lost_first() -> bool:
        return await stack.a_cart_ids(user) == {second["item_id"]}

    await eventually(a_lost_first, 15, "the removal to reach A's master cart")

    # Paying on B clears A's master cart.
    resp = await stack.b.post("/order/pay", json={"user_id": str(user)})
    assert resp.status_code == 200, f"{resp.text}\n{stack.logs()}"
    assert resp.json()["total_cents"] == 300

    async def a_cleared() -> bool:
        return await stack.a_cart_ids(user) == set()

    await eventually(a_cleared, 15, "the order.paid event to clear A's master cart")
    assert (await stack.a.get(f"/stock/{pid}")).json()["quantity"] == 9
    assert await stack.b_cart_ids(user) == set()


def kafka_sh(command: str, env: dict[str, str]) -> None:
    result = subprocess.run(["bash", str(KAFKA_SH), command], capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, f"kafka.sh {command} failed:\n{result.stdout}\n{result.stderr}"


async def test_broker_outage_loses_nothing(stack: Stack) -> None:
    """Adds and a payment made while the broker is stopped replicate after it restarts."""
    if not KAFKA_SH.exists():
        missing_dependency(f"{KAFKA_SH} is missing")
    script_env = local_kafka_script_env()
    if script_env is None:
        missing_dependency(
            "the outage test stops and starts the broker of scripts/kafka.sh: "
            "KAFKA_BROKERS must be its one address, 127.0.0.1:$KAFKA_PORT"
        )
        return
    user, payer, pid = next_id(), next_id(), await stack.product()
    before = await stack.add(user, pid)
    paid_item = await stack.add(payer, pid)

    async def synced() -> bool:
        return await stack.b_cart_ids(user) == {before["item_id"]} and await stack.b_cart_ids(payer) == {
            paid_item["item_id"]
        }

    await eventually(synced, 15, "the first items in B")

    kafka_sh("stop", script_env)
    try:
        during = [await stack.add(user, pid) for _ in range(3)]
        order = await stack.b.post("/order/pay", json={"user_id": payer})
        assert order.status_code == 200, order.text

        async def a_sees_outage() -> bool:
            body = (await stack.a.get("/readyz")).json()
            return body["kafka"] == "disconnected" and body["outbox_pending"] >= 3

        await eventually(a_sees_outage, 30, "A to report Kafka down with events in its outbox")
        ready_b = await stack.b.get("/readyz")
        assert ready_b.status_code == 200
    finally:
        kafka_sh("start", script_env)

    want = {before["item_id"], *(i["item_id"] for i in during)}

    async def all_in_b() -> bool:
        return await stack.b_cart_ids(user) == want

    await eventually(all_in_b, 90, "the adds made during the outage to reach B")

    async def payer_cleared_on_a() -> bool:
        return await stack.a_cart_ids(payer) == set()

    await eventually(payer_cleared_on_a, 60, "the payment made during the outage to clear A's master cart")

    async def drained() -> bool:
        bodies = [(await c.get("/readyz")).json() for c in (stack.a, stack.b)]
        return all(b["kafka"] == "connected" and b["outbox_pending"] == 0 for b in bodies)

    await eventually(drained, 30, "both outboxes to drain")
