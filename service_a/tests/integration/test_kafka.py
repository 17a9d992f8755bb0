"""Service A against a real broker: it publishes cart changes from its outbox
and applies B's events exactly once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.main import create_app
from app.settings import Settings
from shopkit_testing import as_service, event_record, eventually
from tests.support import create_stock

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka_settings(settings: Settings, kafka: str, run_id: str) -> Settings:
    return settings.model_copy(
        update={
            "kafka_enabled": True,
            "kafka_brokers": kafka,
            "cart_changes_topic": f"test-{run_id}.cart-changes",
            "order_events_topic": f"test-{run_id}.order-events",
            "kafka_group_id": f"test-{run_id}-a",
            "kafka_retry_max_seconds": 1.0,
            "outbox_poll_seconds": 0.2,
        }
    )


@pytest.fixture
async def kafka_client(kafka_settings: Settings) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    app = create_app(kafka_settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://a", headers=as_service()) as client,
    ):
        yield app, client


async def read_events(
    bootstrap: str, topic: str, want: int, timeout: float = 20.0
) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """want records of topic: key, headers and value (JSON)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    got: list[tuple[str, dict[str, str], dict[str, Any]]] = []
    try:

        async def enough() -> bool:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(
                    (r.key.decode(), {k: v.decode() for k, v in r.headers}, json.loads(r.value)) for r in records
                )
            return len(got) >= want

        await eventually(enough, timeout, f"{want} events on {topic}")
    finally:
        await consumer.stop()
    return got


async def test_add_to_cart_is_published(kafka_client: tuple[FastAPI, AsyncClient], kafka_settings: Settings) -> None:
    app, client = kafka_client
    await create_stock(client, 1)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    item = (
        await client.post(
            "/cart/add", json={"user_id": "8", "product_id": "1", "quantity": 2}, headers={"traceparent": traceparent}
        )
    ).json()
    events = await read_events(kafka_settings.kafka_brokers, kafka_settings.cart_changes_topic, 1)
    # CloudEvents, Kafka binary content mode: the attributes in headers, the data as the value.
    key, headers, data = events[0]
    assert (key, data) == ("8", {"item": item})
    assert set(headers) == {
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_subject",
        "content-type",
        "ce_traceparent",
    }
    assert {k: headers[k] for k in ("ce_specversion", "ce_source", "ce_type", "ce_subject", "content-type")} == {
        "ce_specversion": "1.0",
        "ce_source": "/service-a",
        "ce_type": "cart.item_added",
        "ce_subject": str(item["item_id"]),
        "content-type": "application/json",
    }
    assert headers["ce_traceparent"] == traceparent
    assert headers["ce_id"] and headers["ce_time"].endswith("Z")

    async def ready() -> bool:
        body = (await client.get("/readyz")).json()
        return body["kafka"] == "connected" and body["outbox_pending"] == 0

    await eventually(ready, 20, "kafka connected and the outbox drained")


async def test_order_paid_clears_master_cart_once(
    kafka_client: tuple[FastAPI, AsyncClient], kafka_settings: Settings
) -> None:
    app, client = kafka_client
    await create_stock(client, 1)
    items = [
        (await client.post("/cart/add", json={"user_id": 9, "product_id": 1, "quantity": 1})).json() for _ in range(2)
    ]
    value, headers = event_record(
        "order.paid",
        {"order": {"order_id": 1, "user_id": 9}, "item_ids": [i["item_id"] for i in items], "reservation_id": "r"},
        source="/service-b",
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.kafka_brokers)
    await producer.start()
    try:
        for _ in range(2):  # the same event twice: a redelivery
            await producer.send_and_wait(kafka_settings.order_events_topic, value, key=b"9", headers=headers)
    finally:
        await producer.stop()

    async def cleared() -> bool:
        return (await client.get("/cart/fallback/9")).json()["items"] == []

    await eventually(cleared, 30, "the master cart to be cleared")
    events = await read_events(kafka_settings.kafka_brokers, kafka_settings.cart_changes_topic, 4)
    removed = [data for _, headers, data in events if headers["ce_type"] == "cart.item_removed"]
    assert sorted(d["item"]["item_id"] for d in removed) == sorted(i["item_id"] for i in items)
