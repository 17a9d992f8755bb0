"""The configuration of a service's Kafka pieces, in one validated object."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Protocol

BATCH = 200
"""Most outbox rows the relay publishes, and most records the consumer applies, at a time."""


class KafkaSettings(Protocol):
    """The settings of a service that :meth:`KafkaConfig.from_settings` reads."""

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


@dataclasses.dataclass(frozen=True)
class KafkaConfig:
    """What the relay, the consumer, the topic admin and the pruner of one
    service run with.

    source names the service in client ids; the relay publishes to
    produce_topics, the consumer reads consume_topics (none: no consumer) as
    group_id. Reconnection backoff grows to retry_max_seconds (default 10);
    the relay polls the outbox every poll_seconds (default 1) when not woken;
    consumed event ids are kept for inbox_retention (default 7 days). Missing
    topics are created with topic_partitions and topic_replication (default 1
    and 1). enabled false (or no bootstrap servers) runs no Kafka client:
    events then stay in the outbox until a run with Kafka publishes them.

    Construction validates every field and raises ValueError naming each one
    that is out of range."""

    source: str
    bootstrap_servers: tuple[str, ...] = ()
    group_id: str = ""
    produce_topics: tuple[str, ...] = ()
    consume_topics: tuple[str, ...] = ()
    enabled: bool = True
    retry_max_seconds: float = 10.0
    poll_seconds: float = 1.0
    inbox_retention: timedelta = timedelta(days=7)
    topic_partitions: int = 1
    topic_replication: int = 1

    def __post_init__(self) -> None:
        problems = []
        if not self.source:
            problems.append("source is empty")
        if self.enabled and self.consume_topics and not self.group_id:
            problems.append("group_id is empty but there are topics to consume")
        if not self.retry_max_seconds > 0:
            problems.append(f"retry_max_seconds {self.retry_max_seconds} is not positive")
        if not self.poll_seconds > 0:
            problems.append(f"poll_seconds {self.poll_seconds} is not positive")
        if self.inbox_retention <= timedelta(0):
            problems.append(f"inbox_retention {self.inbox_retention} is not positive")
        if self.topic_partitions < 1:
            problems.append(f"topic_partitions {self.topic_partitions} is below 1")
        if self.topic_replication < 1:
            problems.append(f"topic_replication {self.topic_replication} is below 1")
        if problems:
            raise ValueError("kafka config: " + "; ".join(problems))

    @property
    def active(self) -> bool:
        """Whether Kafka clients run at all: enabled and with bootstrap servers."""
        return self.enabled and bool(self.bootstrap_servers)

    @property
    def topics(self) -> list[str]:
        """Every topic the service produces or consumes, sorted, once each."""
        return sorted(set(self.produce_topics) | set(self.consume_topics))

    @classmethod
    def from_settings(
        cls,
        settings: KafkaSettings,
        *,
        source: str,
        produce_topics: list[str],
        consume_topics: list[str],
    ) -> KafkaConfig:
        """The configuration of a service's settings: KAFKA_ENABLED,
        KAFKA_BROKERS (empty disables Kafka), KAFKA_GROUP_ID,
        KAFKA_RETRY_MAX_SECONDS, OUTBOX_POLL_SECONDS, INBOX_RETENTION_HOURS
        and KAFKA_TOPIC_PARTITIONS."""
        return cls(
            source=source,
            enabled=settings.kafka_enabled,
            bootstrap_servers=tuple(settings.bootstrap_servers),
            group_id=settings.kafka_group_id,
            produce_topics=tuple(produce_topics),
            consume_topics=tuple(consume_topics),
            retry_max_seconds=settings.kafka_retry_max_seconds,
            poll_seconds=settings.outbox_poll_seconds,
            inbox_retention=timedelta(hours=settings.inbox_retention_hours),
            topic_partitions=settings.kafka_topic_partitions,
        )


class Backoff:
    """Exponential reconnection delays: 0.2 s, doubling up to max_seconds,
    back to 0.2 s after :meth:`reset`; and which failures are worth a log
    line (:meth:`failed`)."""

    FIRST = 0.2

    def __init__(self, max_seconds: float) -> None:
        self._max = max_seconds
        self._next = self.FIRST
        self._failures = 0

    def failed(self, was_connected: bool) -> bool:
        """Count a failure; True when it should be logged: the first since
        the last success, or one that ends a connection (not every retry of
        an outage)."""
        self._failures += 1
        return was_connected or self._failures == 1

    def next(self) -> float:
        """The delay to wait now; the next one is twice as long, up to the maximum."""
        delay = self._next
        self._next = min(self._next * 2, self._max)
        return delay

    def reset(self) -> None:
        """Start over from the first delay (after a success)."""
        self._next = self.FIRST
        self._failures = 0
