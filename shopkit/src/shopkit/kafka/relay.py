"""The outbox relay: publishes the ``outbox`` table in id order (idempotent
producer, acks=all) as CloudEvents in binary content mode (see
:mod:`shopkit.events`) and deletes rows only after the broker's ack. Delivery
is at least once; every event has a unique ``ce_id`` that consumers use to
drop duplicates.

The relay reconnects with exponential backoff, so the service starts and
serves without Kafka; :attr:`OutboxRelay.connected` feeds ``/readyz``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time

from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shopkit import telemetry
from shopkit.db import Outbox
from shopkit.events import Event
from shopkit.kafka.admin import ensure_topics
from shopkit.kafka.config import BATCH, Backoff, KafkaConfig
from shopkit.kafka.election import RelayElection

log = logging.getLogger(__name__)

PROBE_SECONDS = 3.0
"""How often an idle or standby relay asks the broker for metadata, so that
/readyz notices an outage while nothing is published."""

SEND_TIMEOUT_SECONDS = 10.0
"""A batch not acknowledged within this time counts as a broker outage (the
producer would otherwise keep retrying quietly while /readyz says "connected")."""


class OutboxRelay:
    """Publishes one service's outbox while election says this process leads;
    stands by, connected to the broker, otherwise."""

    def __init__(
        self, config: KafkaConfig, sessions: async_sessionmaker[AsyncSession], election: RelayElection
    ) -> None:
        self._config = config
        self._sessions = sessions
        self.election = election
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready = False
        self._probed = 0.0
        self.connected = False
        """Whether the relay is talking to the broker."""

    def wake(self) -> None:
        """Tell the relay that the outbox has new events (no-op when idle anyway)."""
        self._wake.set()

    async def outbox_size(self) -> int:
        """Number of events waiting to be published."""
        async with self._sessions() as session:
            return int((await session.execute(select(func.count()).select_from(Outbox))).scalar_one())

    async def run(self) -> None:
        """Relay until cancelled; any broker or database trouble closes the
        producer, resigns and retries with backoff."""
        backoff = Backoff(self._config.retry_max_seconds)
        while True:
            try:
                if self._producer is None:
                    await self._open_producer()
                if not await self.election.lead():
                    await self._stand_by()
                    continue
                if await self.publish_batch():
                    continue
                await self._idle()
                self.connected = True
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if backoff.failed(self.connected):
                    log.warning("outbox relay: kafka unavailable (%r); retrying with backoff", exc)
                self.connected = False
                await self.close()
                await asyncio.sleep(backoff.next())

    async def close(self) -> None:
        """Close the producer and resign from the election."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)
        await self.election.resign()

    async def _open_producer(self) -> None:
        config = self._config
        producer = AIOKafkaProducer(
            bootstrap_servers=list(config.bootstrap_servers),
            client_id=f"{config.source}-relay",
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
            await ensure_topics(
                config.bootstrap_servers,
                client_id=f"{config.source}-admin",
                topics=config.topics,
                partitions=config.topic_partitions,
                replication=config.topic_replication,
            )
            self._topics_ready = True
        self.connected = True
        log.info("outbox relay: connected to kafka %s", ",".join(config.bootstrap_servers))

    async def _stand_by(self) -> None:
        """Another process relays: wait a poll interval, probing the broker
        now and then so that /readyz stays true to it."""
        await asyncio.sleep(self._config.poll_seconds)
        now = time.monotonic()
        if now - self._probed >= PROBE_SECONDS:
            self._probed = now
            await self._probe()

    async def _probe(self) -> None:
        assert self._producer is not None
        await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 10)

    async def publish_batch(self) -> int:
        """Publish up to BATCH of the oldest outbox rows, wait for the broker's
        acks, delete them; return how many were published (0: outbox empty).
        A row that is not an event is logged and dropped."""
        async with self._sessions() as session:
            rows = (await session.execute(select(Outbox).order_by(Outbox.id).limit(BATCH))).scalars().all()
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

        await asyncio.wait_for(send_all(), SEND_TIMEOUT_SECONDS)
        async with self._sessions() as session, session.begin():
            await session.execute(delete(Outbox).where(Outbox.id.in_([r.id for r in rows])))
        self.connected = True
        log.debug("outbox relay: published %d events", len(rows))
        return len(rows)

    async def _idle(self) -> None:
        """Wait for a wake-up or the poll interval; probe the broker now and
        then so that /readyz notices an outage while nothing is published."""
        deadline = time.monotonic() + PROBE_SECONDS
        while time.monotonic() < deadline:
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.poll_seconds)
                return
            async with self._sessions() as session:
                if (await session.execute(select(Outbox.id).limit(1))).first() is not None:
                    return
        await self._probe()
