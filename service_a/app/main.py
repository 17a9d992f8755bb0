"""Builds service A's FastAPI app: stock, the master copy of carts, and the
stock side of payments."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

# app.db is imported for its tables: they join shopkit.db.Base, the migrations' target.
from app import carts, crud
from app import db as _tables  # noqa: F401
from app.api.routes import cart, master, order, stock
from app.settings import Settings
from shopkit import migrations
from shopkit.events import Event
from shopkit.kafka import KafkaBridge
from shopkit.service import build_app

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "alembic"
"""Service A's Alembic migrations, applied up to the head revision on start."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for settings (read from the environment when None).

    On start it upgrades the schema to the head migration (waiting up to 30 s
    for the database) and starts the Kafka bridge, which does not wait for the
    broker."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine, sessions = await migrations.open_database(settings.database_url, MIGRATIONS)

        async def handle(session: AsyncSession, event: Event) -> None:
            await carts.apply_order_event(session, settings, event)

        bridge = KafkaBridge.from_settings(
            settings,
            source=crud.SOURCE,
            produce_topics=[settings.cart_changes_topic],
            consume_topics=[settings.order_events_topic],
            handler=handle,
            sessions=sessions,
        )
        app.state.engine, app.state.sessions, app.state.bridge = engine, sessions, bridge
        await bridge.start()
        log.info("service A ready (database %s)", engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            await bridge.stop()
            await engine.dispose()

    return build_app(
        title="service_a",
        summary="Stock, the master copy of carts, and the stock side of payments.",
        settings=settings,
        lifespan=lifespan,
        routers=[stock.router, cart.router, order.router, master.router],
    )
