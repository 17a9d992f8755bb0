"""Kafka plumbing: a transactional outbox relay and an idempotent consumer,
one module per job (as watermill keeps publisher, subscriber and router
apart):

- :mod:`~shopkit.kafka.outbox`: :func:`add_event`, :func:`add_cart_event`,
  queueing an event in the transaction of the change.
- :mod:`~shopkit.kafka.relay`: :class:`OutboxRelay`, publishing the outbox.
- :mod:`~shopkit.kafka.election`: :class:`RelayElection`, the one relay
  among processes sharing a database.
- :mod:`~shopkit.kafka.admin`: :func:`ensure_topics`, creating missing topics.
- :mod:`~shopkit.kafka.consumer`: :class:`InboxConsumer`, applying each event once.
- :mod:`~shopkit.kafka.pruning`: :class:`InboxPruner`, forgetting old inbox rows.
- :mod:`~shopkit.kafka.config`: :class:`KafkaConfig`, what they all run with.
- :mod:`~shopkit.kafka.bridge`: :class:`KafkaBridge`, composing them for a service.
"""

from shopkit.kafka.bridge import KafkaBridge
from shopkit.kafka.config import KafkaConfig, KafkaSettings
from shopkit.kafka.consumer import Handler, InboxConsumer
from shopkit.kafka.outbox import add_cart_event, add_event
from shopkit.kafka.relay import OutboxRelay

__all__ = [
    "Handler",
    "InboxConsumer",
    "KafkaBridge",
    "KafkaConfig",
    "KafkaSettings",
    "OutboxRelay",
    "add_cart_event",
    "add_event",
]
