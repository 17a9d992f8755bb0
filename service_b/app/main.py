"""Builds service B's FastAPI app: the cart read model, payments and orders."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

# app.db is imported for its tables: they join shopkit.db.Base, the migrations' target.
from app import crud
from app import db as _tables  # noqa: F401
from app.api.routes import cart, order
from app.payments import Payments
from app.settings import Settings
from app.stock_client import StockClient
from shopkit import identity, migrations
from shopkit.events import Event
from shopkit.kafka import KafkaBridge
from shopkit.service import build_app

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "alembic"
"""Service B's Alembic migrations, applied up to the head revision on start."""


def create_app(settings: Settings | None = None, a_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The app for settings (read from the environment when None).

    a_transport replaces the network transport of the client of service A
    (tests). On start the app upgrades the schema to the head migration
    (waiting up to 30 s for the database) and starts the Kafka bridge, which
    does not wait for the broker."""
    settings = settings or Settings()
    # B's own identity for its calls to A; a key that cannot be read stops the start.
    signer = identity.Signer(settings.identity_signing_key, settings.identity_issuer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine, sessions = await migrations.open_database(settings.database_url, MIGRATIONS)

        async def handle(session: AsyncSession, event: Event) -> None:
            await crud.apply_cart_event(session, event)

        bridge = KafkaBridge.from_settings(
            settings,
            source=crud.SOURCE,
            produce_topics=[settings.order_events_topic],
            consume_topics=[settings.cart_changes_topic],
            handler=handle,
            sessions=sessions,
        )
        stock = StockClient(
            settings.service_a_url,
            settings.service_a_timeout_seconds,
            signer,
            audience=settings.service_a_audience,
            transport=a_transport,
        )
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

    return build_app(
        title="service_b",
        summary="The cart read model, payments and orders.",
        settings=settings,
        lifespan=lifespan,
        routers=[cart.router, order.router],
    )
