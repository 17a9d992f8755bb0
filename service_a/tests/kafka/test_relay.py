"""shopkit.kafka.relay: publishing the outbox in order, deleting only what the
broker acknowledged (a scripted producer; against a real broker in
tests/integration)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from shopkit.db import Outbox
from shopkit.events import Event
from shopkit.kafka import relay as relay_module
from shopkit.kafka.config import KafkaConfig
from shopkit.kafka.election import RelayElection
from shopkit.kafka.outbox import add_event
from shopkit.kafka.relay import OutboxRelay
from shopkit.wire import utcnow


class ScriptedProducer:
    """Records what is sent; acknowledges at once unless told to hang."""

    def __init__(self, hang: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes, Any]] = []
        self.hang = hang

    async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[None]:
        self.sent.append((topic, value, key, headers))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.hang:
            done.set_result(None)
        return done


def relay_with(app: FastAPI, producer: ScriptedProducer) -> OutboxRelay:
    relay = OutboxRelay(KafkaConfig(source="test", enabled=False), app.state.sessions, RelayElection(None))
    relay._producer = producer  # type: ignore[assignment]
    return relay


async def queue(app: FastAPI, n: int, topic: str = "t") -> list[str]:
    async with app.state.sessions() as session, session.begin():
        return [add_event(session, source="test", topic=topic, key=i, type_="x.y", data={"n": i}) for i in range(n)]


async def test_publishes_in_order_and_deletes(app: FastAPI) -> None:
    ids = await queue(app, 3)
    producer = ScriptedProducer()
    relay = relay_with(app, producer)
    assert await relay.outbox_size() == 3
    assert await relay.publish_batch() == 3
    assert [Event.from_record(value, headers).id for _, value, _, headers in producer.sent] == ids
    assert [key for _, _, key, _ in producer.sent] == [b"0", b"1", b"2"]
    assert relay.connected
    assert await relay.outbox_size() == 0
    assert await relay.publish_batch() == 0


async def test_publishes_at_most_a_batch(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "BATCH", 2)
    await queue(app, 3)
    relay = relay_with(app, ScriptedProducer())
    assert await relay.publish_batch() == 2
    assert await relay.outbox_size() == 1


async def test_unacknowledged_batch_stays(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ack within the send timeout: an outage; the rows are kept for the next try."""
    monkeypatch.setattr(relay_module, "SEND_TIMEOUT_SECONDS", 0.1)
    await queue(app, 2)
    relay = relay_with(app, ScriptedProducer(hang=True))
    with pytest.raises(asyncio.TimeoutError):
        await relay.publish_batch()
    assert await relay.outbox_size() == 2


async def test_drops_a_row_that_is_not_an_event(app: FastAPI) -> None:
    (good,) = await queue(app, 1)
    async with app.state.sessions() as session, session.begin():
        session.add(Outbox(event_id="bad", topic="t", key="1", payload="not json", created_at=utcnow()))
    producer = ScriptedProducer()
    relay = relay_with(app, producer)
    assert await relay.publish_batch() == 2
    assert [Event.from_record(value, headers).id for _, value, _, headers in producer.sent] == [good]
    async with app.state.sessions() as session:
        assert (await session.execute(select(Outbox))).first() is None


async def test_wake_ends_the_idle_wait(app: FastAPI) -> None:
    relay = OutboxRelay(KafkaConfig(source="test", poll_seconds=30), app.state.sessions, RelayElection(None))
    idle = asyncio.create_task(relay._idle())
    await asyncio.sleep(0.05)
    assert not idle.done()
    relay.wake()
    await asyncio.wait_for(idle, 2)
