"""The settings both services read the same way: listening, storage, Kafka, logging.

Each service subclasses ServiceSettings and gives the fields whose defaults
are its own (port, database file, consumer group, topics) and adds the rest.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shopkit.db import normalize_database_url
from shopkit.trusted_keys import parse_trust

# Fields whose defaults are each service's own: a service gives the default
# (``port: Port = 8002``) and keeps the constraints and description.
Port = Annotated[int, Field(ge=1, le=65535, description="TCP port to listen on.")]
DatabaseUrl = Annotated[str, Field(description="SQLite file path or URL, or a PostgreSQL URL (postgresql://...).")]


class ServiceSettings(BaseSettings):
    """Configuration common to the services. Every field has an environment
    variable of the same name in upper case (``DATABASE_URL`` for
    ``database_url``)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: Port
    web_concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="uvicorn worker processes serving the port (WEB_CONCURRENCY). Above 1, each has its own "
        "database pool; one of them at a time relays the outbox (see shopkit.kafka).",
    )
    database_url: DatabaseUrl
    kafka_enabled: bool = Field(
        True, description="Publish and consume Kafka events. When false, events stay in the outbox."
    )
    kafka_brokers: str = Field("127.0.0.1:9092", description="Comma-separated bootstrap servers.")
    kafka_group_id: str = Field(description="Consumer group of the service's consumer.")
    cart_changes_topic: str = Field(
        "service-a.cart-changes.v1", description="Topic of service A's master-cart changes (A publishes, B replicates)."
    )
    order_events_topic: str = Field(
        "service-b.order-events.v1",
        description="Topic of service B's events, order paid and cart item removed (B publishes, A consumes).",
    )
    kafka_retry_max_seconds: float = Field(
        10.0, gt=0, description="Longest wait between two Kafka reconnection attempts."
    )
    outbox_poll_seconds: float = Field(
        1.0, gt=0, description="How often the outbox relay looks for unsent events when not woken."
    )
    kafka_topic_partitions: int = Field(
        6,
        ge=1,
        le=1000,
        description="Partitions of the service topics it creates when missing (events are keyed by user, "
        "so each user's stay in order); an existing topic keeps its own count.",
    )
    inbox_retention_hours: float = Field(
        168.0, gt=0, description="How long ids of consumed events are kept for deduplication."
    )
    idempotency_window_hours: float = Field(
        24.0, gt=0, description="How long the answer to a mutation sent with an Idempotency-Key is replayed."
    )
    identity_keys: str = Field(
        description="Who the service trusts: comma-separated issuer=location pairs, location a JWKS file or an "
        "http(s) URL serving one (see shopkit.identity). Required: a service without it does not start."
    )
    identity_audience: str = Field(description="The audience this service's identity assertions must name.")
    identity_user_issuers: str = Field(
        "shop-gateway", description="Comma-separated issuers whose assertions may name users (the gateway)."
    )
    identity_issuer: str = Field(description="The name this service signs its own calls' assertions as.")
    identity_signing_key: str = Field(
        "", description="Private JWK (EdDSA or ES256) this service signs its calls to other services with."
    )
    log_level: str = Field("INFO", description="Logging level.")
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return normalize_database_url(value)

    @field_validator("identity_keys")
    @classmethod
    def _identity_keys(cls, value: str) -> str:
        parse_trust(value)
        return value

    @property
    def trusted_issuers(self) -> dict[str, str]:
        """IDENTITY_KEYS as issuer -> location."""
        return parse_trust(self.identity_keys)

    @property
    def user_issuers(self) -> list[str]:
        """IDENTITY_USER_ISSUERS as a list."""
        return [i.strip() for i in self.identity_user_issuers.split(",") if i.strip()]

    @property
    def bootstrap_servers(self) -> list[str]:
        """Kafka bootstrap servers as a list."""
        return [b.strip() for b in self.kafka_brokers.split(",") if b.strip()]
