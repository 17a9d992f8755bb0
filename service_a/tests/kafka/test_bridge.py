"""shopkit.kafka.bridge: the composition of relay, consumer and pruner."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from shopkit.events import Event
from shopkit.kafka.bridge import KafkaBridge
from shopkit.kafka.config import KafkaConfig


async def handler(session: AsyncSession, event: Event) -> None:
    await asyncio.sleep(0)


async def test_without_kafka_only_the_pruner_runs(app: FastAPI) -> None:
    """KAFKA_ENABLED false, or no brokers: no client, events stay in the outbox."""
    for config in (
        KafkaConfig(source="t", enabled=False, bootstrap_servers=("127.0.0.1:1",), consume_topics=("c",)),
        KafkaConfig(source="t", group_id="g", consume_topics=("c",)),
    ):
        bridge = KafkaBridge(config, handler=handler, sessions=app.state.sessions)
        await bridge.start()
        try:
            assert [t.get_name() for t in bridge._tasks] == ["inbox-prune"]
            assert not bridge.enabled and not bridge.connected
        finally:
            await bridge.stop()
        assert bridge._tasks == []


async def test_connected_needs_relay_and_consumer(app: FastAPI) -> None:
    config = KafkaConfig(source="t", bootstrap_servers=("127.0.0.1:1",), group_id="g", consume_topics=("c",))
    bridge = KafkaBridge(config, handler=handler, sessions=app.state.sessions)
    assert bridge.enabled and not bridge.connected
    bridge.relay.connected = True
    assert not bridge.connected
    bridge.consumer.connected = True
    assert bridge.connected
    await bridge.stop()
    assert not bridge.connected, "stop marks both disconnected"


async def test_an_applied_event_wakes_the_relay(app: FastAPI) -> None:
    bridge = KafkaBridge(KafkaConfig(source="t", enabled=False), handler=handler, sessions=app.state.sessions)
    assert not bridge.relay._wake.is_set()
    await bridge.consumer.apply_event(Event(id="e1", type="x.y", source="/t", time="", data={}), "test")
    assert bridge.relay._wake.is_set()
