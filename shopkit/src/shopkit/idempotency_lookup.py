"""``POST /internal/idempotency/lookup``: whether a mutation was applied at
this service, read-only, for the gateway (which routes no public path to it).
The records it reads are those of :mod:`shopkit.idempotency`."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from shopkit.auth import ServiceDep
from shopkit.idempotency import MAX_KEY_LENGTH, SELECT_RECORD, Mutation, request_digest, scope_params

router = APIRouter(tags=["internal"])


class LookupRequest(BaseModel):
    """A mutation as it was sent: who sent it, where, with which key and body."""

    caller: str = Field(
        default="", max_length=32, description="The subject of the identity assertion it was sent with."
    )
    method: str = Field(min_length=1, max_length=10)
    path: str = Field(min_length=1, max_length=512)
    query: str = Field(default="", max_length=8192)
    key: str = Field(min_length=1, max_length=MAX_KEY_LENGTH)
    body: str = Field(default="", max_length=4 << 20, description="The request body as sent.")


@router.post("/internal/idempotency/lookup", include_in_schema=False)
async def lookup(request: Request, sent: LookupRequest, _: ServiceDep) -> dict[str, Any]:
    """Whether the mutation described was applied, read-only: ``applied``
    with the stored answer's ``status_code`` and ``body`` when a record of
    its scope exists and was made by the same request; ``unknown`` for
    anything else (never sent, refused, rolled back, another request, or
    past the window). Only services (``shop:service``) may ask."""
    m = Mutation(
        deadline_ms=None,
        caller=sent.caller,
        method=sent.method.upper(),
        path=sent.path,
        key=sent.key,
        digest=request_digest(sent.query.encode(), sent.body.encode(), sent.caller),
    )
    async with request.app.state.read_sessions() as session:
        row = (await session.execute(SELECT_RECORD, scope_params(m))).one_or_none()
    if row is None or row.digest != m.digest:
        return {"state": "unknown"}
    try:
        body: Any = json.loads(row.body)
    except ValueError:
        body = row.body
    return {"state": "applied", "status_code": row.status_code, "body": body}
