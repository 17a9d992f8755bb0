"""shopkit.kafka.outbox: what add_event queues."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import select

from shopkit.db import Outbox
from shopkit.events import Event
from shopkit.kafka.outbox import add_event


async def test_add_event_queues_the_event_in_the_transaction(app: FastAPI) -> None:
    async with app.state.sessions() as session, session.begin():
        first = add_event(session, source="svc", topic="t", key=7, type_="x.y", data={"a": 1}, subject=3)
        second = add_event(session, source="svc", topic="t", key="k", type_="x.z", data={})
    assert first != second
    async with app.state.sessions() as session:
        rows = (await session.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
    assert [(r.event_id, r.topic, r.key) for r in rows] == [(first, "t", "7"), (second, "t", "k")]
    event = Event.from_json(rows[0].payload)
    assert (event.id, event.type, event.source, event.subject, event.data) == (first, "x.y", "/svc", "3", {"a": 1})


async def test_a_rolled_back_transaction_queues_nothing(app: FastAPI) -> None:
    async with app.state.sessions() as session, session.begin():
        add_event(session, source="svc", topic="t", key=1, type_="x.y", data={})
        await session.rollback()
    async with app.state.sessions() as session:
        assert (await session.execute(select(Outbox))).first() is None
