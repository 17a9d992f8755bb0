"""Kafka records of events, as the services publish them."""

from __future__ import annotations

import uuid
from typing import Any

from shopkit.events import Event


def event_record(
    type_: str, data: dict[str, Any], event_id: str | None = None, source: str = "/test"
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The Kafka record (value, headers) of an event as the services publish
    it: CloudEvents in binary content mode, a new id unless event_id is given."""
    return Event(
        id=event_id or str(uuid.uuid4()), type=type_, source=source, time="2026-11-25T00:00:00.000000Z", data=data
    ).to_record()
