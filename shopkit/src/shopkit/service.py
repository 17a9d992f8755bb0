"""The FastAPI app that every service builds on: the ``{code, message}``
error handlers, the request-context middleware and the health routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

from shopkit import health
from shopkit.errors import install_error_handlers
from shopkit.logs import RequestContextMiddleware


def build_app(
    *,
    title: str,
    summary: str,
    settings: Any,
    lifespan: Any,
    routers: Sequence[APIRouter],
    version: str = "1.0.0",
) -> FastAPI:
    """An app serving ``/healthz``, ``/readyz`` and then routers.

    Every error answers ``{"code", "message"}`` (see :mod:`shopkit.errors`),
    X-Request-Id and traceparent are kept for logs and onward calls, and
    settings is kept in ``app.state.settings``. lifespan must set
    ``app.state.engine``, ``.sessions`` and ``.bridge``, which the health
    routes and :mod:`shopkit.deps` read."""
    app = FastAPI(title=title, summary=summary, version=version, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    for router in (health.router, *routers):
        app.include_router(router)
    return app
