"""The FastAPI app that every service builds on: the ``{code, message}``
error handlers, the request-context middleware and the health routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI

from shopkit import db, health, idempotency_lookup, identity, telemetry
from shopkit.errors import install_error_handlers
from shopkit.idempotency import IdempotencyMiddleware
from shopkit.logs import RequestContextMiddleware
from shopkit.settings import ServiceSettings


def build_app(
    *,
    title: str,
    summary: str,
    settings: ServiceSettings,
    lifespan: Any,
    routers: Sequence[APIRouter],
    version: str = "1.0.0",
) -> FastAPI:
    """An app serving ``/healthz``, ``/readyz``, the gateway's idempotency
    lookup (``/internal/idempotency/lookup``) and then routers.

    Every error answers ``{"code", "message"}`` (see :mod:`shopkit.errors`),
    X-Request-Id and traceparent are kept for logs and onward calls, a
    mutation sent with an Idempotency-Key is applied once (see
    :mod:`shopkit.idempotency`), every route but the probes needs a valid
    identity assertion (see :mod:`shopkit.identity`), and settings is
    kept in ``app.state.settings``. With an OTLP endpoint in the OTEL_*
    variables, requests are traced (see :mod:`shopkit.telemetry`). lifespan must set
    ``app.state.engine``, ``.sessions`` and ``.bridge``, which the health
    routes and :mod:`shopkit.deps` read; ``app.state.read_sessions`` (the
    read pool, :func:`shopkit.db.open_readers`) is added here."""

    @asynccontextmanager
    async def lifespan_with_readers(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            app.state.read_sessions, close_readers = await db.open_readers(app.state.engine)
            try:
                yield
            finally:
                await close_readers()
                telemetry.shutdown()  # export the spans still queued

    app = FastAPI(
        title=title,
        summary=summary,
        version=version,
        lifespan=lifespan_with_readers,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(
        IdempotencyMiddleware,
        window=timedelta(hours=settings.idempotency_window_hours),
    )
    verifier = identity.Verifier(settings.trusted_issuers, settings.identity_audience, settings.user_issuers)
    verifier.load()  # a key file that cannot be read stops the start, loudly
    app.add_middleware(identity.IdentityMiddleware, verifier=verifier)
    app.add_middleware(RequestContextMiddleware)
    for router in (health.router, idempotency_lookup.router, *routers):
        app.include_router(router)
    # OTLP tracing when the OTEL_* variables ask for it (see shopkit.telemetry).
    if telemetry.setup_tracing(title):
        telemetry.instrument_app(app)
    return app
