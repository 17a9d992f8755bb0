"""shopkit.kafka.consumer: each event applied once, bad ones skipped, the
relay woken after what was applied (with a recording handler; the services'
own handlers are in tests/test_events.py)."""

from __future__ import annotations

from types import SimpleNamespace

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shopkit.db import Inbox
from shopkit.events import Event
from shopkit.kafka.config import KafkaConfig
from shopkit.kafka.consumer import InboxConsumer
from shopkit_testing.events import event_record


def consumer_for(app: FastAPI, seen: list[str], wakes: list[int]) -> InboxConsumer:
    async def handler(session: AsyncSession, event: Event) -> None:
        if event.type == "bad.event":
            raise KeyError("missing field")
        seen.append(event.id)

    return InboxConsumer(
        KafkaConfig(source="test", enabled=False), app.state.sessions, handler, lambda: wakes.append(1)
    )


def message(offset: int, event_id: str, type_: str = "x.y") -> SimpleNamespace:
    value, headers = event_record(type_, {}, event_id=event_id)
    return SimpleNamespace(offset=offset, value=value, headers=headers)


async def test_apply_once(app: FastAPI) -> None:
    seen: list[str] = []
    wakes: list[int] = []
    consumer = consumer_for(app, seen, wakes)
    record = event_record("x.y", {}, event_id="e1")
    await consumer.apply(*record, "test")
    await consumer.apply(*record, "test")
    assert seen == ["e1"]
    assert wakes == [1], "woken after the applied event, not the duplicate"


async def test_skips_malformed_and_bad_events(app: FastAPI) -> None:
    seen: list[str] = []
    consumer = consumer_for(app, seen, [])
    await consumer.apply(b"\xff", [], "test")
    await consumer.apply(*event_record("bad.event", {}, event_id="b1"), "test")
    await consumer.apply(*event_record("x.y", {}, event_id="e2"), "test")
    assert seen == ["e2"]


async def test_batch_applies_in_order_once(app: FastAPI) -> None:
    seen: list[str] = []
    wakes: list[int] = []
    consumer = consumer_for(app, seen, wakes)
    batch = [message(0, "a"), message(1, "b"), message(2, "a")]
    await consumer.apply_batch("t", 0, batch)
    await consumer.apply_batch("t", 0, batch)
    assert seen == ["a", "b"]
    assert wakes, "the relay is woken after a batch"


async def test_batch_with_a_bad_event_falls_back_to_one_at_a_time(app: FastAPI) -> None:
    seen: list[str] = []
    consumer = consumer_for(app, seen, [])
    await consumer.apply_batch("t", 0, [message(0, "a"), message(1, "bad", "bad.event"), message(2, "c")])
    assert seen == ["a", "a", "c"], "the batch's transaction rolled back, then one at a time"
    async with app.state.sessions() as session:
        assert sorted((await session.execute(select(Inbox.event_id))).scalars()) == ["a", "c"]
