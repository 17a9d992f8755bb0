"""``GET /stock/{product_id}`` answered from memory: what FastAPI and uvicorn
cost on their own, served exactly as the services are (shopkit.serve)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """HOST, PORT, WEB_CONCURRENCY, LOG_LEVEL and LOG_FORMAT, as the services read them."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    web_concurrency: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    log_level: str = Field("INFO", description="Logging level.")
    log_format: str = Field("text", description="Log line format.")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The hello-world app (settings are unused but accepted like the services')."""
    app = FastAPI(title="hello")

    @app.get("/stock/{product_id}")
    async def get_stock(product_id: int) -> dict[str, Any]:
        return {"product_id": product_id, "product_name": "hello", "quantity": 1, "price_cents": 1}

    return app
