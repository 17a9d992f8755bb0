"""The idempotent consumer: commits offsets manually and only after the event
was applied and its ``ce_id`` recorded in the ``inbox`` table, in one
database transaction (a partition's fetched batch in one transaction). A
redelivered event is therefore applied once. It reconnects with exponential
backoff; :attr:`InboxConsumer.connected` feeds ``/readyz``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy.exc
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shopkit import telemetry
from shopkit.db import Inbox
from shopkit.events import Event
from shopkit.kafka.config import BATCH, Backoff, KafkaConfig
from shopkit.wire import utcnow

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
"""Applies one consumed event inside the caller's transaction."""

# Errors that say the event itself is bad: retrying cannot help, so it is skipped.
_BAD_EVENT = (ValidationError, KeyError, ValueError, TypeError, sqlalchemy.exc.IntegrityError)


class InboxConsumer:
    """Reads config's consume_topics as its group_id and applies each event
    once with handler; after each applied batch it calls on_applied (the
    relay's wake-up: a handler may have queued events)."""

    def __init__(
        self,
        config: KafkaConfig,
        sessions: async_sessionmaker[AsyncSession],
        handler: Handler,
        on_applied: Callable[[], None] = lambda: None,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self.handler = handler
        self._on_applied = on_applied
        self.connected = False
        """Whether the consumer is talking to the broker."""

    async def run(self) -> None:
        """Consume until cancelled; broker trouble reconnects with backoff."""
        config = self._config
        backoff = Backoff(config.retry_max_seconds)
        while True:
            consumer = AIOKafkaConsumer(
                *config.consume_topics,
                bootstrap_servers=list(config.bootstrap_servers),
                group_id=config.group_id,
                client_id=f"{config.source}-consumer",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                metadata_max_age_ms=30000,
            )
            try:
                await consumer.start()
                self.connected = True
                log.info("consumer: subscribed to %s as group %s", ", ".join(config.consume_topics), config.group_id)
                backoff.reset()
                while True:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
                    for tp, messages in batches.items():
                        await self.apply_batch(tp.topic, tp.partition, messages)
                        # Commit only after the events are in the database.
                        await consumer.commit({tp: messages[-1].offset + 1})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if backoff.failed(self.connected):
                    log.warning("consumer: kafka unavailable (%r); retrying with backoff", exc)
                self.connected = False
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 10)
            await asyncio.sleep(backoff.next())

    async def apply_batch(self, topic: str, partition: int, messages: Sequence[Any]) -> None:
        """Apply the records of one partition's fetch in order, exactly once.

        All of them in one transaction (one inbox lookup for the batch, one
        commit): a consumer applies a backlog at the database's pace per
        batch, not per event. When anything in it fails (a bad event, the
        database) the transaction is rolled back and the records are
        applied one at a time (:meth:`apply_event`), which skips bad events and
        retries database failures."""
        events: list[tuple[Event, str]] = []
        for message in messages:
            where = f"{topic}/{partition}@{message.offset}"
            try:
                events.append((Event.from_record(message.value, message.headers), where))
            except ValueError as exc:  # also bad JSON and bad UTF-8
                log.error("consumer: skipping malformed event at %s: %r", where, exc)
        if len(events) > 1:
            try:
                await self._apply_together(topic, [event for event, _ in events])
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info(
                    "consumer: batch of %d at %s/%d failed (%r); applying one at a time",
                    len(events),
                    topic,
                    partition,
                    exc,
                )
        for event, where in events:
            with telemetry.consumer_span(topic, event.type, event.traceparent):
                await self.apply_event(event, where)

    async def _apply_together(self, topic: str, events: list[Event]) -> None:
        async with self._sessions() as session, session.begin():
            ids = [event.id for event in events]
            seen = set((await session.execute(select(Inbox.event_id).where(Inbox.event_id.in_(ids)))).scalars())
            for event in events:
                if event.id in seen:
                    continue
                seen.add(event.id)
                session.add(Inbox(event_id=event.id, processed_at=utcnow()))
                with telemetry.consumer_span(topic, event.type, event.traceparent):
                    await self.handler(session, event)
        self._on_applied()

    async def apply(
        self, value: bytes | None, headers: Sequence[tuple[str, bytes]], where: str, topic: str = ""
    ) -> None:
        """Apply the event of one record exactly once (deduplicated on its
        ce_id); retry database failures until they pass. Traced, in a
        consumer span under the event's traceparent."""
        try:
            event = Event.from_record(value, headers)
        except ValueError as exc:  # also bad JSON and bad UTF-8
            log.error("consumer: skipping malformed event at %s: %r", where, exc)
            return
        with telemetry.consumer_span(topic, event.type, event.traceparent):
            await self.apply_event(event, where)

    async def apply_event(self, event: Event, where: str) -> None:
        """Apply event once (where names its record in logs): a duplicate is
        skipped, a bad event is logged and skipped, a database failure is
        retried with backoff until it passes."""
        event_id = event.id
        backoff = Backoff(self._config.retry_max_seconds)
        while True:
            try:
                async with self._sessions() as session, session.begin():
                    if await session.get(Inbox, event_id) is not None:
                        log.debug("consumer: duplicate event %s at %s", event_id, where)
                        return
                    session.add(Inbox(event_id=event_id, processed_at=utcnow()))
                    await self.handler(session, event)
                self._on_applied()
                return
            except _BAD_EVENT as exc:
                log.error("consumer: skipping event %s (%s) at %s: %r", event_id, event.type, where, exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The database (or a bug) is in the way: keep the event and retry it.
                log.warning("consumer: cannot apply event %s at %s (%r); retrying", event_id, where, exc)
                await asyncio.sleep(backoff.next())
