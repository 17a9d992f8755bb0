"""Settings of service A, read from the environment (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shopkit.settings import DatabaseUrl, Port, ServiceSettings

SERVICE_DIR = Path(__file__).resolve().parent.parent


class Settings(ServiceSettings):
    """Configuration of service A: the common fields of ServiceSettings with
    A's defaults. Every field has an environment variable of the same name in
    upper case (``DATABASE_URL`` for ``database_url``)."""

    port: Port = 8002
    database_url: DatabaseUrl = str(SERVICE_DIR / "service_a.db")
    identity_audience: str = Field("service_a", description="The audience assertions for this service name.")
    identity_issuer: str = Field("service_a", description="The name this service signs its own calls as.")
    kafka_group_id: str = Field("service-a", description="Consumer group of the order-events consumer.")
