"""Builds service B's FastAPI app: the cart read model, payments and orders."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app import crud, db
from app.api.routes import cart, health, order
from app.errors import install_error_handlers
from app.kafka import KafkaBridge
from app.logs import RequestContextMiddleware
from app.payments import Payments, StockClient
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


def create_app(settings: Settings | None = None, a_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The app for settings (read from the environment when None).

    a_transport replaces the network transport of the client of service A
    (tests). On start the app creates the schema (waiting up to 30 s for the
    database) and starts the Kafka bridge, which does not wait for the broker."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.make_engine(settings.database_url)
        await _create_schema_with_retry(engine)
        sessions = db.make_session_factory(engine)

        async def handle(session: Any, event: dict[str, Any]) -> None:
            await crud.apply_cart_event(session, event)

        bridge = KafkaBridge(
            enabled=settings.kafka_enabled and bool(settings.bootstrap_servers),
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.kafka_group_id,
            source=crud.SOURCE,
            produce_topics=[settings.order_events_topic],
            consume_topics=[settings.cart_changes_topic],
            handler=handle,
            sessions=sessions,
            retry_max_seconds=settings.kafka_retry_max_seconds,
            poll_seconds=settings.outbox_poll_seconds,
            inbox_retention=timedelta(hours=settings.inbox_retention_hours),
        )
        stock = StockClient(settings.service_a_url, settings.service_a_timeout_seconds, transport=a_transport)
        payments = Payments(settings, sessions, stock, bridge)
        app.state.engine, app.state.sessions = engine, sessions
        app.state.bridge, app.state.payments = bridge, payments
        await bridge.start()
        await payments.start()
        log.info(
            "service B ready (database %s, service A %s)",
            engine.url.render_as_string(hide_password=True),
            settings.service_a_url,
        )
        try:
            yield
        finally:
            await payments.stop()
            await bridge.stop()
            await stock.aclose()
            await engine.dispose()

    app = FastAPI(
        title="service_b",
        summary="The cart read model, payments and orders.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    for module in (health, cart, order):
        app.include_router(module.router)
    return app
