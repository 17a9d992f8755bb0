"""shopkit.kafka.pruning: inbox rows older than the retention go, newer stay."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import select

from shopkit.db import Inbox
from shopkit.kafka.pruning import InboxPruner
from shopkit.wire import utcnow


async def test_prunes_only_expired_rows(app: FastAPI) -> None:
    now = utcnow()
    async with app.state.sessions() as session, session.begin():
        session.add(Inbox(event_id="old", processed_at=now - timedelta(hours=3)))
        session.add(Inbox(event_id="new", processed_at=now - timedelta(minutes=30)))
    assert await InboxPruner(app.state.sessions, timedelta(hours=1)).prune() == 1
    async with app.state.sessions() as session:
        assert list((await session.execute(select(Inbox.event_id))).scalars()) == ["new"]
