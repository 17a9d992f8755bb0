"""The Kafka broker of the integration tests: its address, the ``kafka`` and ``run_id`` fixtures."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from shopkit_testing.ci import missing_dependency


def kafka_bootstrap() -> str:
    """The broker the integration tests use (KAFKA_BROKERS, default 127.0.0.1:9092)."""
    return os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")


def local_kafka_script_env() -> dict[str, str] | None:
    """The environment under which ``scripts/kafka.sh`` controls the broker the
    tests use, or None when that broker is not a local one of the script.

    The script's broker listens on 127.0.0.1:$KAFKA_PORT. When KAFKA_BROKERS
    names one loopback address, that is the broker: KAFKA_PORT is taken from
    it (so a run with the ports moved stops and starts the right broker).
    """
    brokers = [b.strip() for b in kafka_bootstrap().split(",") if b.strip()]
    if len(brokers) != 1:
        return None
    host, _, port = brokers[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        return None
    env = dict(os.environ)
    configured = env.get("KAFKA_PORT")
    if configured and configured != port:
        return None
    env["KAFKA_PORT"] = port
    return env


def broker_reachable(bootstrap: str | None = None) -> bool:
    """Whether a TCP connection to the first bootstrap server succeeds."""
    host, _, port = (bootstrap or kafka_bootstrap()).split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


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
