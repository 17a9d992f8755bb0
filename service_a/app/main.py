"""Builds service A's FastAPI app: stock, the master copy of carts, and the
stock side of payments."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from app import crud, db
from app.api.routes import cart, health, order, stock
from app.errors import install_error_handlers
from app.kafka import KafkaBridge
from app.logs import RequestContextMiddleware
from app.settings import Settings

log = logging.getLogger(__name__)


async def _create_schema_with_retry(engine: Any, attempts: int = 30) -> None:
    for attempt in range(1, attempts + 1):
        try:
            await db.create_schema(engine)
            return
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("database not reachable yet (%r), retrying", exc)
            await asyncio.sleep(1)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for settings (read from the environment when None).

    On start it creates the schema (waiting up to 30 s for the database) and
    starts the Kafka bridge, which does not wait for the broker."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.make_engine(settings.database_url)
        await _create_schema_with_retry(engine)
        sessions = db.make_session_factory(engine)

        async def handle(session: Any, event: dict[str, Any]) -> None:
            await crud.apply_order_event(session, settings, event)

        bridge = KafkaBridge(
            enabled=settings.kafka_enabled and bool(settings.bootstrap_servers),
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.kafka_group_id,
            source=crud.SOURCE,
            produce_topics=[settings.cart_changes_topic],
            consume_topics=[settings.order_events_topic],
            handler=handle,
            sessions=sessions,
            retry_max_seconds=settings.kafka_retry_max_seconds,
            poll_seconds=settings.outbox_poll_seconds,
            inbox_retention=timedelta(hours=settings.inbox_retention_hours),
        )
        app.state.engine, app.state.sessions, app.state.bridge = engine, sessions, bridge
        await bridge.start()
        log.info("service A ready (database %s)", engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            await bridge.stop()
            await engine.dispose()

    app = FastAPI(
        title="service_a",
        summary="Stock, the master copy of carts, and the stock side of payments.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    for module in (health, stock, cart, order):
        app.include_router(module.router)
    return app
