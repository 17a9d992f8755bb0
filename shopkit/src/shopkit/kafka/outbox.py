"""Writing events: a request queues its event in the ``outbox`` table in the
same transaction as the change, so a change is never lost when Kafka is down;
the relay (:mod:`shopkit.kafka.relay`) publishes it later."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shopkit import telemetry
from shopkit.db import Outbox
from shopkit.events import Event, valid_traceparent
from shopkit.wire import CartItemPublic, format_timestamp, utcnow


def add_event(
    session: AsyncSession,
    *,
    source: str,
    topic: str,
    key: int | str,
    type_: str,
    data: dict[str, Any],
    subject: int | str = "",
) -> str:
    """Queue an event in the outbox of session's transaction and return its id.

    The event gets a new id, the time now, ce_source ``/<source>``, the
    subject as a string and the traceparent of the request being served
    (when valid: the current span's when tracing is on); the Kafka key is
    key as a decimal string."""
    now = utcnow()
    event = Event(
        id=str(uuid.uuid4()),
        type=type_,
        source=f"/{source}",
        time=format_timestamp(now),
        data=data,
        subject=str(subject),
        traceparent=valid_traceparent(telemetry.current_traceparent()),
    )
    session.add(Outbox(event_id=event.id, topic=topic, key=str(key), payload=event.to_json(), created_at=now))
    return event.id


def add_cart_event(
    session: AsyncSession, *, source: str, topic: str, type_: str, item: CartItemPublic, **extra: Any
) -> str:
    """add_event for a cart line: keyed by its user, its item id the subject,
    data ``{"item": ..., **extra}``."""
    return add_event(
        session,
        source=source,
        topic=topic,
        key=item.user_id,
        type_=type_,
        data={"item": item.model_dump(mode="json"), **extra},
        subject=item.item_id,
    )
