"""The events the services send each other on their own Kafka topics, and
their one format: CloudEvents 1.0 in Kafka binary content mode, the same
headers as the gateway's events.

Service A publishes its master-cart changes on ``CART_CHANGES_TOPIC``
(``cart.item_added``, ``cart.item_removed``), which B replicates into its read
model; service B publishes ``order.paid`` and ``cart.item_removed`` on
``ORDER_EVENTS_TOPIC``, which A applies to the master carts.

A record's value is the event's data as JSON; its attributes are headers:
``ce_specversion`` (``1.0``), ``ce_id`` (unique per event: consumers dedupe on
it), ``ce_source`` (``/service-a`` or ``/service-b``), ``ce_type`` (one of the
types below), ``ce_time`` (RFC 3339 UTC), ``ce_subject`` (the cart line's or
order's id), ``content-type`` (``application/json``) and ``ce_traceparent``
(the W3C trace context of the request that made the change, when it had a
valid one). The outbox keeps an event in the CloudEvents JSON format (the
attributes and ``data`` in one object) until the relay publishes it.

Records written before the services used CloudEvents (a JSON envelope
``{"event_id", "type", "source", "occurred_at", "data"}`` as the value, no
``ce_`` headers) are still read, and so are outbox rows in that form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CART_ITEM_ADDED = "cart.item_added"
"""A cart line was added on A; data ``{"item": CartItem}``."""
CART_ITEM_REMOVED = "cart.item_removed"
"""A cart line was removed (on A, or on B and then on A); data ``{"item": CartItem, "reason"?: str}``."""
ORDER_PAID = "order.paid"
"""B recorded a paid order; data ``{"order": Order, "item_ids": [int], "reservation_id": str}``."""

SPEC_VERSION = "1.0"
"""The CloudEvents version of every event."""
CONTENT_TYPE = "application/json"
"""The media type of every event's data."""

H_SPECVERSION = "ce_specversion"
H_ID = "ce_id"
H_SOURCE = "ce_source"
H_TYPE = "ce_type"
H_TIME = "ce_time"
H_SUBJECT = "ce_subject"
H_CONTENT_TYPE = "content-type"
H_TRACEPARENT = "ce_traceparent"

# W3C Trace Context: version 00-fe, a non-zero trace id and parent id, flags.
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
_MAX_ATTRIBUTE = 1024


def valid_traceparent(value: str) -> str:
    """value when it is a well-formed W3C traceparent, else ""."""
    return value if _TRACEPARENT.fullmatch(value) else ""


@dataclass(frozen=True)
class Event:
    """One event: its CloudEvents attributes and its data (a JSON object).
    subject and traceparent are "" when absent."""

    id: str
    type: str
    source: str
    time: str
    data: dict[str, Any] = field(default_factory=dict)
    subject: str = ""
    traceparent: str = ""

    def to_json(self) -> str:
        """The event in the CloudEvents JSON format (how the outbox keeps it)."""
        doc: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": CONTENT_TYPE,
        }
        if self.subject:
            doc["subject"] = self.subject
        if self.traceparent:
            doc["traceparent"] = self.traceparent
        doc["data"] = self.data
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """An event from the CloudEvents JSON format, or from the JSON envelope
        of earlier versions; ValueError when it is neither."""
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("an event must be a JSON object")
        if "specversion" in doc:
            if doc["specversion"] != SPEC_VERSION:
                raise ValueError(f"unsupported CloudEvents specversion {doc['specversion']!r}")
            return cls._checked(
                doc.get("id"),
                doc.get("type"),
                doc.get("source"),
                doc.get("time", ""),
                doc.get("data"),
                doc.get("subject", ""),
                doc.get("traceparent", ""),
            )
        return cls._checked(
            doc.get("event_id"),
            doc.get("type"),
            doc.get("source") or "unknown",
            doc.get("occurred_at", ""),
            doc.get("data"),
        )

    def to_record(self) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The Kafka record value and headers (binary content mode)."""
        headers = [
            (H_SPECVERSION, SPEC_VERSION.encode()),
            (H_ID, self.id.encode()),
            (H_SOURCE, self.source.encode()),
            (H_TYPE, self.type.encode()),
            (H_TIME, self.time.encode()),
        ]
        if self.subject:
            headers.append((H_SUBJECT, self.subject.encode()))
        headers.append((H_CONTENT_TYPE, CONTENT_TYPE.encode()))
        if self.traceparent:
            headers.append((H_TRACEPARENT, self.traceparent.encode()))
        return json.dumps(self.data, separators=(",", ":")).encode(), headers

    @classmethod
    def from_record(cls, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Event:
        """The event of a Kafka record: binary content mode when it has a
        ``ce_specversion`` header, else the JSON envelope of earlier versions
        in the value. ValueError when malformed (a missing or repeated
        attribute, a value that is not a JSON object, data that is not JSON)."""
        attrs: dict[str, str] = {}
        for name, raw in headers:
            if name.startswith("ce_") or name == H_CONTENT_TYPE:
                if name in attrs:
                    raise ValueError(f"header {name} repeated")
                attrs[name] = raw.decode("utf-8")
        if H_SPECVERSION not in attrs:
            return cls.from_json(value or b"")
        if attrs[H_SPECVERSION] != SPEC_VERSION:
            raise ValueError(f"unsupported CloudEvents specversion {attrs[H_SPECVERSION]!r}")
        content_type = attrs.get(H_CONTENT_TYPE, CONTENT_TYPE).split(";")[0].strip()
        if content_type != CONTENT_TYPE:
            raise ValueError(f"unsupported content-type {content_type!r}")
        return cls._checked(
            attrs.get(H_ID),
            attrs.get(H_TYPE),
            attrs.get(H_SOURCE),
            attrs.get(H_TIME, ""),
            json.loads(value or b""),
            attrs.get(H_SUBJECT, ""),
            attrs.get(H_TRACEPARENT, ""),
        )

    @classmethod
    def _checked(
        cls, id_: Any, type_: Any, source: Any, time: Any, data: Any, subject: Any = "", traceparent: Any = ""
    ) -> Event:
        for name, value in (("id", id_), ("type", type_), ("source", source)):
            if not isinstance(value, str) or not value or len(value) > _MAX_ATTRIBUTE:
                raise ValueError(f"event {name} must be a non-empty string")
        if not isinstance(data, dict):
            raise ValueError("event data must be a JSON object")
        return cls(
            id=id_,
            type=type_,
            source=source,
            time=str(time),
            data=data,
            subject=str(subject),
            traceparent=valid_traceparent(str(traceparent)),
        )
