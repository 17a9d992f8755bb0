"""Settings of service A, read from the environment (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shopkit.settings import ServiceSettings

SERVICE_DIR = Path(__file__).resolve().parent.parent


class Settings(ServiceSettings):
    """Configuration of service A: the common fields of ServiceSettings with
    A's defaults. Every field has an environment variable of the same name in
    upper case (``DATABASE_URL`` for ``database_url``)."""

    port: int = Field(8002, ge=1, le=65535, description="TCP port to listen on.")
    database_url: str = Field(
        str(SERVICE_DIR / "service_a.db"),
        description="SQLite file path or URL, or a PostgreSQL URL (postgresql://...).",
    )
    kafka_group_id: str = Field("service-a", description="Consumer group of the order-events consumer.")
