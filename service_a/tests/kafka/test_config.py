"""shopkit.kafka.config: the validated configuration and the backoff."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from shopkit.kafka.config import Backoff, KafkaConfig


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"source": ""}, "source is empty"),
        ({"consume_topics": ("t",)}, "group_id is empty"),
        ({"retry_max_seconds": 0}, "retry_max_seconds 0 is not positive"),
        ({"poll_seconds": -1}, "poll_seconds -1 is not positive"),
        ({"poll_seconds": float("nan")}, "poll_seconds nan is not positive"),
        ({"inbox_retention": timedelta(0)}, "inbox_retention 0:00:00 is not positive"),
        ({"topic_partitions": 0}, "topic_partitions 0 is below 1"),
        ({"topic_replication": 0}, "topic_replication 0 is below 1"),
    ],
)
def test_refuses_bad_values(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        KafkaConfig(**{"source": "svc", **fields})


def test_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as err:
        KafkaConfig(source="", poll_seconds=0, topic_partitions=0)
    assert str(err.value).count(";") == 2, str(err.value)


def test_disabled_consumer_needs_no_group() -> None:
    assert not KafkaConfig(source="svc", enabled=False, consume_topics=("t",)).active


def test_active_needs_servers_and_enabled() -> None:
    assert KafkaConfig(source="svc", bootstrap_servers=("b:9092",)).active
    assert not KafkaConfig(source="svc").active
    assert not KafkaConfig(source="svc", bootstrap_servers=("b:9092",), enabled=False).active


def test_topics_once_each_sorted() -> None:
    config = KafkaConfig(source="svc", group_id="g", produce_topics=("b", "a"), consume_topics=("a", "c"))
    assert config.topics == ["a", "b", "c"]


def test_from_settings() -> None:
    settings = SimpleNamespace(
        kafka_enabled=True,
        bootstrap_servers=["h1:1", "h2:2"],
        kafka_group_id="grp",
        kafka_retry_max_seconds=4.0,
        outbox_poll_seconds=0.5,
        inbox_retention_hours=2.0,
        kafka_topic_partitions=3,
    )
    config = KafkaConfig.from_settings(settings, source="svc", produce_topics=["p"], consume_topics=["c"])
    assert config == KafkaConfig(
        source="svc",
        bootstrap_servers=("h1:1", "h2:2"),
        group_id="grp",
        produce_topics=("p",),
        consume_topics=("c",),
        retry_max_seconds=4.0,
        poll_seconds=0.5,
        inbox_retention=timedelta(hours=2),
        topic_partitions=3,
    )


def test_backoff_doubles_to_its_maximum_and_resets() -> None:
    backoff = Backoff(1.0)
    assert [backoff.next() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.2


def test_backoff_reports_the_first_failure_and_lost_connections() -> None:
    backoff = Backoff(1.0)
    assert [backoff.failed(False) for _ in range(3)] == [True, False, False]
    assert backoff.failed(True), "a connection that ends is reported"
    backoff.reset()
    assert backoff.failed(False)
