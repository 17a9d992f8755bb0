"""Kafka plumbing: a transactional outbox relay and an idempotent consumer.

Publishing: a request writes its event to the ``outbox`` table in the same
transaction as the change (:func:`add_event`), so a change is never lost when
Kafka is down. :class:`KafkaBridge` runs a relay task that publishes the
outbox in id order (idempotent producer, acks=all) as CloudEvents in binary
content mode (see :mod:`shopkit.events`) and deletes rows only after the
broker's ack. Delivery is at least once; every event has a unique ``ce_id``
that consumers use to drop duplicates.

Consuming: the consumer commits offsets manually and only after the event was
applied and its ``ce_id`` recorded in the ``inbox`` table, in one database
transaction (a partition's fetched batch in one transaction). A redelivered
event is therefore applied once.

Both tasks reconnect with exponential backoff, so the service starts and
serves without Kafka; :attr:`KafkaBridge.connected` feeds ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

import sqlalchemy.exc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shopkit import telemetry
from shopkit.db import Inbox, Outbox
from shopkit.events import Event, valid_traceparent
from shopkit.leader import LeaderLock, leader_lock
from shopkit.wire import CartItemPublic, format_timestamp, utcnow

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
"""Applies one consumed event inside the caller's transaction."""

_PROBE_SECONDS = 3.0
# A batch not acknowledged within this time counts as a broker outage (the
# producer would otherwise keep retrying quietly while /readyz says "connected").
_SEND_TIMEOUT_SECONDS = 10.0
_PRUNE_SECONDS = 600.0
_BATCH = 200


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


class KafkaSettings(Protocol):
    """The settings of a service that :meth:`KafkaBridge.from_settings` reads."""

    kafka_enabled: bool
    kafka_group_id: str
    kafka_retry_max_seconds: float
    outbox_poll_seconds: float
    inbox_retention_hours: float
    kafka_topic_partitions: int

    @property
    def bootstrap_servers(self) -> list[str]:
        """Kafka bootstrap servers; empty disables Kafka like kafka_enabled=False."""
        ...


class KafkaBridge:
    """Runs the outbox relay and the consumer of one service.

    source names the service in client ids; the relay
    publishes to produce_topics, the consumer reads consume_topics (none: no
    consumer) as group_id and applies each event with handler. Reconnection
    backoff grows to retry_max_seconds (default 10); the relay polls the
    outbox every poll_seconds (default 1) when not woken; consumed event ids
    are kept for inbox_retention (default 7 days). Missing topics are created
    with topic_partitions and topic_replication (default 1 and 1).

    Does nothing when enabled is false: events then stay in the outbox until
    a run with Kafka enabled publishes them.

    relay_lock elects the one relay that publishes when several processes
    (uvicorn workers, instances) share the database; the others stand by,
    connected to the broker, and try to take over every poll_seconds. None:
    this process always relays."""

    def __init__(
        self,
        *,
        enabled: bool,
        bootstrap_servers: list[str],
        group_id: str,
        source: str,
        produce_topics: list[str],
        consume_topics: list[str],
        handler: Handler,
        sessions: async_sessionmaker[AsyncSession],
        retry_max_seconds: float = 10.0,
        poll_seconds: float = 1.0,
        inbox_retention: timedelta = timedelta(days=7),
        topic_partitions: int = 1,
        topic_replication: int = 1,
        relay_lock: LeaderLock | None = None,
    ) -> None:
        self.enabled = enabled
        self._servers = bootstrap_servers
        self._group_id = group_id
        self._source = source
        self._produce_topics = produce_topics
        self._consume_topics = consume_topics
        self._handler = handler
        self._sessions = sessions
        self._retry_max = retry_max_seconds
        self._poll = poll_seconds
        self._inbox_retention = inbox_retention
        self._partitions = topic_partitions
        self._replication = topic_replication
        self._relay_lock = relay_lock
        self.relay_leader = relay_lock is None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready = False
        self._probed = 0.0
        self.producer_connected = False
        self.consumer_connected = False

    @classmethod
    def from_settings(
        cls,
        settings: KafkaSettings,
        *,
        source: str,
        produce_topics: list[str],
        consume_topics: list[str],
        handler: Handler,
        sessions: async_sessionmaker[AsyncSession],
    ) -> KafkaBridge:
        """The bridge configured by a service's settings: KAFKA_ENABLED,
        KAFKA_BROKERS (empty disables Kafka), KAFKA_GROUP_ID,
        KAFKA_RETRY_MAX_SECONDS, OUTBOX_POLL_SECONDS, INBOX_RETENTION_HOURS and
        KAFKA_TOPIC_PARTITIONS; the relay is elected among the processes that
        share the sessions' database (:func:`shopkit.leader.leader_lock`)."""
        return cls(
            enabled=settings.kafka_enabled and bool(settings.bootstrap_servers),
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.kafka_group_id,
            source=source,
            produce_topics=produce_topics,
            consume_topics=consume_topics,
            handler=handler,
            sessions=sessions,
            retry_max_seconds=settings.kafka_retry_max_seconds,
            poll_seconds=settings.outbox_poll_seconds,
            inbox_retention=timedelta(hours=settings.inbox_retention_hours),
            topic_partitions=settings.kafka_topic_partitions,
            relay_lock=leader_lock(sessions.kw["bind"], "outbox-relay"),
        )

    @property
    def connected(self) -> bool:
        """True when both the relay and the consumer are talking to the broker."""
        return self.enabled and self.producer_connected and self.consumer_connected

    def wake(self) -> None:
        """Tell the relay that the outbox has new events (no-op when idle anyway)."""
        self._wake.set()

    async def start(self) -> None:
        """Start the background tasks; returns at once, Kafka or not."""
        self._tasks.append(asyncio.create_task(self._prune_loop(), name="inbox-prune"))
        if not self.enabled:
            log.info("kafka disabled: events stay in the outbox")
            return
        self._tasks.append(asyncio.create_task(self._relay_loop(), name="outbox-relay"))
        if self._consume_topics:
            self._tasks.append(asyncio.create_task(self._consume_loop(), name="consumer"))

    async def stop(self) -> None:
        """Stop the background tasks and close the Kafka clients."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self._close_producer()
        await self._resign()
        self.producer_connected = self.consumer_connected = False

    async def outbox_size(self) -> int:
        """Number of events waiting to be published."""
        async with self._sessions() as session:
            return int((await session.execute(select(func.count()).select_from(Outbox))).scalar_one())

    # Relay

    async def _relay_loop(self) -> None:
        backoff = 0.2
        failures = 0
        while True:
            try:
                if self._producer is None:
                    await self._open_producer()
                if not await self._lead():
                    await self._stand_by()
                    continue
                if await self._publish_batch():
                    continue
                await self._idle()
                self.producer_connected = True
                backoff, failures = 0.2, 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any broker or database trouble: back off and retry
                failures += 1
                if self.producer_connected or failures == 1:
                    log.warning("outbox relay: kafka unavailable (%r); retrying with backoff", exc)
                self.producer_connected = False
                await self._close_producer()
                await self._resign()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._retry_max)

    async def _lead(self) -> bool:
        """Whether this process is (still, or now) the relay."""
        if self._relay_lock is None:
            return True
        if self.relay_leader:
            await self._relay_lock.check()
            return True
        self.relay_leader = await self._relay_lock.acquire()
        if self.relay_leader:
            log.info("outbox relay: this process now publishes the outbox")
        return self.relay_leader

    async def _resign(self) -> None:
        if self._relay_lock is not None and self.relay_leader:
            self.relay_leader = False
            with contextlib.suppress(Exception):
                await self._relay_lock.release()

    async def _stand_by(self) -> None:
        """Another process relays: wait a poll interval, probing the broker
        now and then so that /readyz stays true to it."""
        await asyncio.sleep(self._poll)
        now = time.monotonic()
        if now - self._probed >= _PROBE_SECONDS:
            self._probed = now
            assert self._producer is not None
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 10)

    async def _open_producer(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._servers,
            client_id=f"{self._source}-relay",
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            request_timeout_ms=15000,
            retry_backoff_ms=200,
        )
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer
        if not self._topics_ready:
            await self._ensure_topics()
            self._topics_ready = True
        self.producer_connected = True
        log.info("outbox relay: connected to kafka %s", ",".join(self._servers))

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)

    async def _ensure_topics(self) -> None:
        """Create the topics this service uses when they are missing, so that
        a consumer never waits for a topic that its producer has not made yet."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._servers, client_id=f"{self._source}-admin")
        await admin.start()
        try:
            wanted = sorted(set(self._produce_topics) | set(self._consume_topics))
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                await admin.create_topics(
                    [
                        NewTopic(t, num_partitions=self._partitions, replication_factor=self._replication)
                        for t in missing
                    ]
                )
                log.info("created kafka topics %s", ", ".join(missing))
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def _publish_batch(self) -> int:
        async with self._sessions() as session:
            rows = (await session.execute(select(Outbox).order_by(Outbox.id).limit(_BATCH))).scalars().all()
        if not rows:
            return 0
        producer = self._producer
        assert producer is not None

        async def send_all() -> None:
            futures = []
            for row in rows:
                try:
                    event = Event.from_json(row.payload)
                except ValueError as exc:
                    # Only add_event writes rows, so this is a bug; one bad row must not stop the others.
                    log.error("outbox relay: dropping row %s, not an event: %r", row.id, exc)
                    continue
                # Traced, the record carries the producer span's context.
                with telemetry.producer_span(row.topic, event.traceparent) as traceparent:
                    value, headers = dataclasses.replace(event, traceparent=traceparent).to_record()
                    futures.append(await producer.send(row.topic, value, key=row.key.encode(), headers=headers))
            await asyncio.gather(*futures)

        await asyncio.wait_for(send_all(), _SEND_TIMEOUT_SECONDS)
        async with self._sessions() as session, session.begin():
            await session.execute(delete(Outbox).where(Outbox.id.in_([r.id for r in rows])))
        self.producer_connected = True
        log.debug("outbox relay: published %d events", len(rows))
        return len(rows)

    async def _idle(self) -> None:
        """Wait for a wake-up or the poll interval; probe the broker now and
        then so that /readyz notices an outage while nothing is published."""
        deadline = time.monotonic() + _PROBE_SECONDS
        while time.monotonic() < deadline:
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
                return
            async with self._sessions() as session:
                if (await session.execute(select(Outbox.id).limit(1))).first() is not None:
                    return
        assert self._producer is not None
        await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 10)

    # Consumer

    async def _consume_loop(self) -> None:
        backoff = 0.2
        failures = 0
        while True:
            consumer = AIOKafkaConsumer(
                *self._consume_topics,
                bootstrap_servers=self._servers,
                group_id=self._group_id,
                client_id=f"{self._source}-consumer",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                metadata_max_age_ms=30000,
            )
            try:
                await consumer.start()
                self.consumer_connected = True
                log.info("consumer: subscribed to %s as group %s", ", ".join(self._consume_topics), self._group_id)
                backoff, failures = 0.2, 0
                while True:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=_BATCH)
                    for tp, messages in batches.items():
                        await self._apply_batch(tp.topic, tp.partition, messages)
                        # Commit only after the events are in the database.
                        await consumer.commit({tp: messages[-1].offset + 1})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if self.consumer_connected or failures == 1:
                    log.warning("consumer: kafka unavailable (%r); retrying with backoff", exc)
                self.consumer_connected = False
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 10)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._retry_max)

    async def _apply_batch(self, topic: str, partition: int, messages: Sequence[Any]) -> None:
        """Apply the records of one partition's fetch in order, exactly once.

        All of them in one transaction (one inbox lookup for the batch, one
        commit): a consumer applies a backlog at the database's pace per
        batch, not per event. When anything in it fails (a bad event, the
        database) the transaction is rolled back and the records are
        applied one at a time (:meth:`_apply`), which skips bad events and
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
                async with self._sessions() as session, session.begin():
                    ids = [event.id for event, _ in events]
                    seen = set((await session.execute(select(Inbox.event_id).where(Inbox.event_id.in_(ids)))).scalars())
                    for event, _ in events:
                        if event.id in seen:
                            continue
                        seen.add(event.id)
                        session.add(Inbox(event_id=event.id, processed_at=utcnow()))
                        with telemetry.consumer_span(topic, event.type, event.traceparent):
                            await self._handler(session, event)
                self.wake()
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
                await self._apply_event(event, where)

    async def _apply(
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
            await self._apply_event(event, where)

    async def _apply_event(self, event: Event, where: str) -> None:
        event_id = event.id
        backoff = 0.2
        while True:
            try:
                async with self._sessions() as session, session.begin():
                    if await session.get(Inbox, event_id) is not None:
                        log.debug("consumer: duplicate event %s at %s", event_id, where)
                        return
                    session.add(Inbox(event_id=event_id, processed_at=utcnow()))
                    await self._handler(session, event)
                self.wake()
                return
            except (
                ValidationError,
                KeyError,
                ValueError,
                TypeError,
                sqlalchemy.exc.IntegrityError,
            ) as exc:
                # The event itself is bad: retrying cannot help, so skip it.
                log.error("consumer: skipping event %s (%s) at %s: %r", event_id, event.type, where, exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The database (or a bug) is in the way: keep the event and retry it.
                log.warning("consumer: cannot apply event %s at %s (%r); retrying", event_id, where, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._retry_max)

    async def _prune_loop(self) -> None:
        while True:
            try:
                cutoff = utcnow() - self._inbox_retention
                async with self._sessions() as session, session.begin():
                    await session.execute(delete(Inbox).where(Inbox.processed_at < cutoff))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("inbox prune failed: %r", exc)
            await asyncio.sleep(_PRUNE_SECONDS)
