"""Topic administration: the topics a service uses exist before its relay
publishes, so that a consumer never waits for a topic that its producer has
not made yet."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger(__name__)


def missing_topics(wanted: Sequence[str], existing: Sequence[str]) -> list[str]:
    """The topics of wanted not in existing, sorted, once each."""
    have = set(existing)
    return sorted({t for t in wanted if t not in have})


async def ensure_topics(
    servers: Sequence[str], *, client_id: str, topics: Sequence[str], partitions: int, replication: int
) -> list[str]:
    """Create those of topics the brokers at servers do not have, with
    partitions and replication; return the ones created (none: all existed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=list(servers), client_id=client_id)
    await admin.start()
    try:
        missing = missing_topics(topics, await admin.list_topics())
        if missing:
            await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in missing]
            )
            log.info("created kafka topics %s", ", ".join(missing))
        return missing
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
