"""``Idempotency-Key`` on the services' mutations, kept in their own database.

A client (or the gateway on its behalf) that sends a mutation with an
``Idempotency-Key`` header and sends it again gets the first answer back and
the mutation is applied once. The gateway keeps such answers too, but only in
memory: after a gateway restart, or when the gateway died between the
service's commit and its own bookkeeping, the retry reaches the service, and
the service is the one place that knows whether the change was made.

How a request with a key runs (scope: method, path and key):

1. A claim row is committed in a transaction of its own: the key is now in
   flight. The same key in flight answers 409 ABORTED; the same key used for
   another request (another query, body or ``X-User-Id``) answers 400
   INVALID_ARGUMENT, so one user never gets another user's stored answer.
2. The mutation runs as always. Its first commit also marks the claim as
   committed, in the same transaction (a SQLAlchemy ``before_commit`` hook),
   so the row tells whether the change was made even if the process dies.
3. A 2xx answer of a request that committed is stored in the row and
   replayed to every repeat within the window (with
   ``Idempotency-Replayed: true``). Any other answer deletes the row: a failed
   mutation changed nothing, so a retry may run again, and a read sent by
   POST (``/cart/fallback``) commits nothing, so it is answered fresh.

A claim whose mutation never committed and that is older than the claim
timeout (the process died before it) is taken over by the next request. A
claim that committed without a stored answer (the process died in between)
answers 409 ABORTED until the window ends: the change was made, and running
it again would make it twice.

``GET /internal/idempotency?method=&path=&key=`` (:data:`router`) reads a
key's record without touching it: the gateway asks it, after a restart,
whether the mutations it had sent but not seen answered were applied, and
emits their events from the stored answer. It is for the gateway only
(the services are reachable from the gateway's network alone, and the
gateway routes no public path to it).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import DateTime, Integer, String, Text, delete, event, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from shopkit.auth import USER_ID_HEADER
from shopkit.db import Base
from shopkit.errors import ApiError, invalid_argument
from shopkit.wire import utcnow

log = logging.getLogger(__name__)

HEADER = b"idempotency-key"
REPLAYED_HEADER = b"idempotency-replayed"
MAX_KEY_LENGTH = 255
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_USER_ID = USER_ID_HEADER.lower().encode()


class IdempotencyRecord(Base):
    """One mutation sent with an Idempotency-Key: its claim, and its answer once it succeeded."""

    __tablename__ = "idempotency"

    method: Mapped[str] = mapped_column(String(10), primary_key=True)
    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    committed: Mapped[bool] = mapped_column(default=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass
class _Claim:
    method: str
    path: str
    key: str
    committed: bool = False

    def row(self) -> tuple[Any, ...]:
        """The WHERE clause of the claim's row."""
        return (
            IdempotencyRecord.method == self.method,
            IdempotencyRecord.path == self.path,
            IdempotencyRecord.key == self.key,
        )


# The claim of the request being served, for the before_commit hook.
_current: contextvars.ContextVar[_Claim | None] = contextvars.ContextVar("idempotency_claim", default=None)


@event.listens_for(Session, "before_commit")
def _mark_committed(session: Session) -> None:
    claim = _current.get()
    if claim is None or claim.committed:
        return
    claim.committed = True
    session.execute(update(IdempotencyRecord).where(*claim.row()).values(committed=True))


def request_digest(query: bytes, body: bytes, user_id: bytes = b"") -> str:
    """A digest of what makes two requests the same: the query, the body and
    the caller's X-User-Id (empty for an internal call).

    A JSON body is compared by value (key order and spacing do not matter),
    anything else byte for byte."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except (ValueError, UnicodeDecodeError):
        canonical = b"raw:" + body
    # An internal call (no X-User-Id) is digested by its query and body alone.
    caller = b"user:" + user_id + b"\n" if user_id else b""
    return hashlib.sha256(caller + query + b"\n" + canonical).hexdigest()


def _aborted(message: str) -> ApiError:
    return ApiError("ABORTED", message)


class IdempotencyMiddleware:
    """Honours Idempotency-Key on mutating requests (see the module doc).

    window is how long an answer is replayed; claim_timeout is how long an
    uncommitted claim blocks its key before a retry may take it over. The
    sessions come from ``app.state.sessions``."""

    def __init__(self, app: Any, window: timedelta, claim_timeout: timedelta) -> None:
        self.app = app
        self.window = window
        self.claim_timeout = claim_timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS:
            await self.app(scope, receive, send)
            return
        raw = _header(scope, HEADER)
        if raw is None:
            await self.app(scope, receive, send)
            return
        key = raw.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            await self._error(
                scope, send, invalid_argument(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
            )
            return

        body, receive = await _buffer(receive)
        claim = _Claim(scope["method"], scope["path"], key)
        sessions = scope["app"].state.sessions
        try:
            digest = request_digest(scope.get("query_string", b""), body, _header(scope, _USER_ID) or b"")
            stored = await self._claim(sessions, claim, digest)
        except ApiError as exc:
            await self._error(scope, send, exc)
            return
        if stored is not None:
            await _replay(stored, send)
            return

        status: list[int] = []
        content_type: list[str] = []
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                for name, value in message.get("headers") or []:
                    if name.lower() == b"content-type":
                        content_type.append(value.decode("latin-1"))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        token = _current.set(claim)
        failed = True
        try:
            await self.app(scope, receive, capture)
            failed = False
        finally:
            _current.reset(token)
            answer = None if failed or not status else status[0]
            await self._settle(sessions, claim, answer, content_type[0] if content_type else None, b"".join(chunks))

    async def _claim(self, sessions: Any, claim: _Claim, digest: str) -> IdempotencyRecord | None:
        """Claim the key, or return the stored answer to replay."""
        now = utcnow()
        async with sessions() as session, session.begin():
            await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - self.window))
            row: IdempotencyRecord | None = await session.get(IdempotencyRecord, (claim.method, claim.path, claim.key))
            if row is not None:
                if row.digest != digest:
                    raise invalid_argument("Idempotency-Key was already used for a different request")
                if row.status_code is not None:
                    return row
                if row.committed:
                    raise _aborted(
                        "a request with this Idempotency-Key was applied but its answer was not recorded; "
                        "it is not applied again"
                    )
                if row.created_at > now - self.claim_timeout:
                    raise _aborted("a request with this Idempotency-Key is in progress; retry later")
                log.warning(
                    "taking over the stale claim of Idempotency-Key %r on %s %s", claim.key, claim.method, claim.path
                )
                row.created_at = now
                return None
            session.add(
                IdempotencyRecord(method=claim.method, path=claim.path, key=claim.key, digest=digest, created_at=now)
            )
            try:
                await session.flush()
            except IntegrityError:
                raise _aborted("a request with this Idempotency-Key is in progress; retry later") from None
        return None

    async def _settle(
        self, sessions: Any, claim: _Claim, status: int | None, content_type: str | None, body: bytes
    ) -> None:
        """Store the answer of a success that changed something; forget the
        claim of anything else (a failure, or a read such as
        ``POST /cart/fallback``, which commits nothing and must stay fresh)."""
        async with sessions() as session, session.begin():
            if status is not None and 200 <= status < 300 and claim.committed:
                await session.execute(
                    update(IdempotencyRecord)
                    .where(*claim.row())
                    .values(committed=True, status_code=status, content_type=content_type, body=body.decode("utf-8"))
                )
            else:
                await session.execute(delete(IdempotencyRecord).where(*claim.row()))

    @staticmethod
    async def _error(scope: dict[str, Any], send: Any, exc: ApiError) -> None:
        async def no_body() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        await exc.to_response()(scope, no_body, send)


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    """The first value of the (lower-case) header name, None when absent."""
    return next((value for key, value in scope.get("headers") or [] if key == name), None)


async def _buffer(receive: Any) -> tuple[bytes, Any]:
    """Read the whole request body; return it and a receive that plays it again."""
    parts: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(parts)
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: dict[str, Any] = await receive()
        return message

    return body, replay


async def _replay(row: IdempotencyRecord, send: Any) -> None:
    body = (row.body or "").encode("utf-8")
    headers = [(b"content-length", str(len(body)).encode()), (REPLAYED_HEADER, b"true")]
    if row.content_type:
        headers.append((b"content-type", row.content_type.encode("latin-1")))
    await send({"type": "http.response.start", "status": row.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


router = APIRouter(tags=["internal"])


@router.get("/internal/idempotency", include_in_schema=False)
async def lookup(
    request: Request,
    method: str = Query(min_length=1, max_length=10),
    path: str = Query(min_length=1, max_length=512),
    key: str = Query(min_length=1, max_length=MAX_KEY_LENGTH),
) -> dict[str, Any]:
    """What became of the mutation ``method path`` sent with Idempotency-Key
    ``key``, read-only: ``applied`` (with the stored answer's
    ``status_code`` and ``body``), ``committed`` (applied, answer not
    recorded), ``pending`` (in flight, not committed yet) or ``unknown`` (no
    record: never applied, or its window is over)."""
    async with request.app.state.sessions() as session:
        row = await session.get(IdempotencyRecord, (method.upper(), path, key))
    if row is None:
        return {"state": "unknown"}
    if row.status_code is not None:
        try:
            body: Any = json.loads(row.body or "null")
        except ValueError:
            body = row.body
        return {"state": "applied", "status_code": row.status_code, "body": body}
    return {"state": "committed" if row.committed else "pending"}
