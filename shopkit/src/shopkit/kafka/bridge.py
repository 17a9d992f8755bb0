"""The Kafka pieces of one service, composed: relay, consumer and inbox
pruner started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shopkit.kafka.config import KafkaConfig, KafkaSettings
from shopkit.kafka.consumer import Handler, InboxConsumer
from shopkit.kafka.election import RelayElection
from shopkit.kafka.pruning import InboxPruner
from shopkit.kafka.relay import OutboxRelay
from shopkit.leader import LeaderLock, leader_lock

log = logging.getLogger(__name__)


class KafkaBridge:
    """Runs the outbox relay, the consumer and the inbox pruner of one service.

    The consumer applies each event of config.consume_topics with handler (no
    topics: no consumer). Without Kafka (config.active false) only the pruner
    runs: events stay in the outbox until a run with Kafka publishes them.

    relay_lock elects the one relay that publishes when several processes
    (uvicorn workers, instances) share the database; the others stand by,
    connected to the broker, and try to take over every poll interval. None:
    this process always relays."""

    def __init__(
        self,
        config: KafkaConfig,
        *,
        handler: Handler,
        sessions: async_sessionmaker[AsyncSession],
        relay_lock: LeaderLock | None = None,
    ) -> None:
        self.config = config
        self.relay = OutboxRelay(config, sessions, RelayElection(relay_lock))
        self.consumer = InboxConsumer(config, sessions, handler, on_applied=self.relay.wake)
        self.pruner = InboxPruner(sessions, config.inbox_retention)
        self._tasks: list[asyncio.Task[None]] = []

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
        """The bridge configured by a service's settings
        (:meth:`KafkaConfig.from_settings`); the relay is elected among the
        processes that share the sessions' database
        (:func:`shopkit.leader.leader_lock`)."""
        config = KafkaConfig.from_settings(
            settings, source=source, produce_topics=produce_topics, consume_topics=consume_topics
        )
        return cls(
            config,
            handler=handler,
            sessions=sessions,
            relay_lock=leader_lock(sessions.kw["bind"], "outbox-relay"),
        )

    @property
    def enabled(self) -> bool:
        """Whether Kafka clients run (KAFKA_ENABLED and bootstrap servers)."""
        return self.config.active

    @property
    def connected(self) -> bool:
        """True when both the relay and the consumer are talking to the broker."""
        return self.enabled and self.relay.connected and self.consumer.connected

    def wake(self) -> None:
        """Tell the relay that the outbox has new events (no-op when idle anyway)."""
        self.relay.wake()

    async def outbox_size(self) -> int:
        """Number of events waiting to be published."""
        return await self.relay.outbox_size()

    async def start(self) -> None:
        """Start the background tasks; returns at once, Kafka or not."""
        self._tasks.append(asyncio.create_task(self.pruner.run(), name="inbox-prune"))
        if not self.enabled:
            log.info("kafka disabled: events stay in the outbox")
            return
        self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        if self.config.consume_topics:
            self._tasks.append(asyncio.create_task(self.consumer.run(), name="consumer"))

    async def stop(self) -> None:
        """Stop the background tasks and close the Kafka clients."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.relay.close()
        self.relay.connected = self.consumer.connected = False
