"""Settings of service B, read from the environment (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from shopkit.settings import DatabaseUrl, Port, ServiceSettings

SERVICE_DIR = Path(__file__).resolve().parent.parent


class Settings(ServiceSettings):
    """Configuration of service B: the common fields of ServiceSettings with
    B's defaults, and how B calls service A. Every field has an environment
    variable of the same name in upper case (``SERVICE_A_URL`` for
    ``service_a_url``)."""

    port: Port = 8001
    database_url: DatabaseUrl = str(SERVICE_DIR / "service_b.db")
    identity_audience: str = Field("service_b", description="The audience assertions for this service name.")
    identity_issuer: str = Field("service_b", description="The name this service signs its own calls as.")
    kafka_group_id: str = Field("service-b", description="Consumer group of the cart-changes consumer.")
    service_a_url: str = Field("http://127.0.0.1:8002", description="Base URL of service A.")
    service_a_audience: str = Field("service_a", description="The audience of B's assertions for service A.")
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

    @field_validator("service_a_url")
    @classmethod
    def _service_a_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _signs_its_calls(self) -> Settings:
        # B calls A for stock, and A trusts no caller without an assertion.
        if not self.identity_signing_key:
            raise ValueError("identity_signing_key is required: B signs its calls to service A")
        return self

    @model_validator(mode="after")
    def _checkout_outlives_calls(self) -> Settings:
        # A payment that is still waiting for A must never be taken for abandoned.
        if self.checkout_timeout_seconds < 3 * self.service_a_timeout_seconds:
            raise ValueError("checkout_timeout_seconds must be at least 3 x service_a_timeout_seconds")
        return self
