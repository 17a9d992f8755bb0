"""Settings of service B, read from the environment (one pydantic-settings class)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shopkit.db import normalize_database_url

SERVICE_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Configuration of service B. Every field has an environment variable of
    the same name in upper case (``SERVICE_A_URL`` for ``service_a_url``)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8001, ge=1, le=65535, description="TCP port to listen on.")
    database_url: str = Field(
        str(SERVICE_DIR / "service_b.db"),
        description="SQLite file path or URL, or a PostgreSQL URL (postgresql://...).",
    )
    service_a_url: str = Field("http://127.0.0.1:8002", description="Base URL of service A.")
    service_a_timeout_seconds: float = Field(
        5.0, gt=0, description="Timeout of one call to service A (connect, read, write)."
    )
    checkout_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="Age after which an unfinished payment is abandoned and its stock given back.",
    )
    release_retry_seconds: float = Field(
        2.0, gt=0, description="How often pending stock releases and stale payments are retried."
    )
    kafka_enabled: bool = Field(
        True, description="Publish and consume Kafka events. When false, events stay in the outbox."
    )
    kafka_brokers: str = Field("127.0.0.1:9092", description="Comma-separated bootstrap servers.")
    kafka_group_id: str = Field("service-b", description="Consumer group of the cart-changes consumer.")
    cart_changes_topic: str = Field(
        "service-a.cart-changes.v1", description="Topic of A's master-cart changes that B replicates."
    )
    order_events_topic: str = Field(
        "service-b.order-events.v1", description="Topic B publishes order paid and cart item removed to."
    )
    kafka_retry_max_seconds: float = Field(
        10.0, gt=0, description="Longest wait between two Kafka reconnection attempts."
    )
    outbox_poll_seconds: float = Field(
        1.0, gt=0, description="How often the outbox relay looks for unsent events when not woken."
    )
    inbox_retention_hours: float = Field(
        168.0, gt=0, description="How long ids of consumed events are kept for deduplication."
    )
    log_level: str = Field("INFO", description="Logging level.")
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return normalize_database_url(value)

    @field_validator("service_a_url")
    @classmethod
    def _service_a_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _checkout_outlives_calls(self) -> Settings:
        # A payment that is still waiting for A must never be taken for abandoned.
        if self.checkout_timeout_seconds < 3 * self.service_a_timeout_seconds:
            raise ValueError("checkout_timeout_seconds must be at least 3 x service_a_timeout_seconds")
        return self

    @property
    def bootstrap_servers(self) -> list[str]:
        """Kafka bootstrap servers as a list."""
        return [b.strip() for b in self.kafka_brokers.split(",") if b.strip()]
