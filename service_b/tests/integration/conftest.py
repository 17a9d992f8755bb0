"""Fixtures of the integration tests: a real broker and unique topic names."""

from __future__ import annotations

import uuid

import pytest

from tests.support import broker_reachable, kafka_bootstrap, missing_dependency


@pytest.fixture
def kafka() -> str:
    """The bootstrap address of a running broker (skip, or fail in CI, when there is none)."""
    bootstrap = kafka_bootstrap()
    if not broker_reachable(bootstrap):
        missing_dependency(f"no Kafka broker at {bootstrap}: start one with scripts/kafka.sh start")
    return bootstrap


@pytest.fixture
def run_id() -> str:
    """A suffix that makes topic names and group ids unique to the test."""
    return uuid.uuid4().hex[:10]
