"""Liveness and readiness routes, the same for every service.

They read ``app.state.engine`` and ``app.state.bridge``, which the service's
lifespan sets."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shopkit import db

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: 200 while the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the database answers, else 503.

    Kafka is reported but does not make the service unready: changes wait in
    the outbox while the broker is down, so requests keep succeeding."""
    state = request.app.state
    body: dict[str, object] = {
        "status": "ready",
        "database": "ok",
        "kafka": "connected" if state.bridge.connected else "disconnected",
        "kafka_enabled": state.bridge.enabled,
    }
    try:
        await db.ping(state.engine)
        body["outbox_pending"] = await state.bridge.outbox_size()
    except Exception as exc:
        log.warning("readiness: database unreachable: %r", exc)
        body.update(status="unavailable", database="unreachable", code="UNAVAILABLE", message="database unreachable")
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
