"""Exactly once at a service: ``Idempotency-Key``, in the transaction of the change.

A client (or the gateway on its behalf) that sends a mutation with an
``Idempotency-Key`` header and sends it again gets the first answer back and
the mutation is applied once. The gateway keeps such answers too, but only in
memory: after a gateway restart, or when the gateway died between the
service's commit and its own bookkeeping, the retry reaches the service, and
the service is the one place that knows whether the change was made.

A key belongs to its caller. A record's scope is (caller, method, path,
key), the caller being the subject of the request's verified identity
assertion (a user id or ``svc:<name>``, see :mod:`shopkit.identity`): the
same key sent by another caller is a different key, so it is never refused,
never blocked and never tells whether it exists.

How a request with a key runs:

1. The record of its scope is read (no transaction, on the read pool). A
   record within the window is replayed (``Idempotency-Replayed: true``) when
   its request digest (query, body by value, caller) matches; the same caller
   reusing the key for another request gets 400 INVALID_ARGUMENT.
2. Otherwise the mutation runs as always. Its code hands its answer to
   :func:`answer` inside the transaction that makes the change; that
   transaction's commit inserts the record with the answer (a SQLAlchemy
   ``before_commit`` hook). The change, its outbox rows and its record
   commit together or not at all: there is no claim that can outlive a dead
   process, and no change without its record.
3. A concurrent duplicate finds the record at commit (PostgreSQL: it waits
   on the key's unique index until the first commits; SQLite: writers are
   serialised): its transaction is rolled back and it is answered with the
   first request's stored answer instead.

A failed mutation commits nothing and stores nothing, so a retry runs again;
a read sent by POST (``/cart/fallback``) never calls :func:`answer` and is
answered fresh.

Deadline: a mutation sent with ``X-Request-Deadline`` (Unix time in
milliseconds, as the gateway sends it) refuses to commit once that time has
passed: 504 DEADLINE_EXCEEDED and the transaction rolled back. The gateway
asks what became of a mutation only after its deadline, so "no record" is
then final: it was not applied and never will be.

``POST /internal/idempotency/lookup`` (:mod:`shopkit.idempotency_lookup`) answers, read-only,
whether the request described in its body (caller, method, path, query, key,
body) was applied: ``applied`` with the stored answer, only when the scope
and the request digest both match; ``unknown`` otherwise. It is for the
gateway, which routes no public path to it.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import DateTime, Integer, Row, String, Text, bindparam, delete, event, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from shopkit.db import Base
from shopkit.errors import ApiError, invalid_argument
from shopkit.identity import caller_of
from shopkit.wire import utcnow

log = logging.getLogger(__name__)

HEADER = b"idempotency-key"
REPLAYED_HEADER = b"idempotency-replayed"
DEADLINE_HEADER = b"x-request-deadline"
MAX_KEY_LENGTH = 255
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PRUNE_EVERY_SECONDS = 600.0


class IdempotencyRecord(Base):
    """One mutation sent with an Idempotency-Key that committed, with its answer."""

    __tablename__ = "idempotency"

    caller: Mapped[str] = mapped_column(String(32), primary_key=True)
    method: Mapped[str] = mapped_column(String(10), primary_key=True)
    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)


@dataclass
class Mutation:
    """The keyed mutation (or the deadline) of the request being served."""

    deadline_ms: int | None
    caller: str = ""
    method: str = ""
    path: str = ""
    key: str = ""
    digest: str = ""
    window: timedelta = timedelta(0)
    answer: tuple[int, str] | None = None
    duplicate: bool = False

    @property
    def keyed(self) -> bool:
        return bool(self.key)


_current: contextvars.ContextVar[Mutation | None] = contextvars.ContextVar("idempotent_mutation", default=None)


def answer(result: BaseModel | dict[str, Any], status_code: int = 200) -> None:
    """Hand the answer of the mutation being served to the transaction that
    makes the change: call it inside that transaction, before it commits.

    For a keyed request the commit stores the answer with the change; with a
    deadline the commit is refused once it has passed. Outside a request (or
    for a request with neither) it does nothing."""
    m = _current.get()
    if m is None:
        return
    body = result.model_dump_json() if isinstance(result, BaseModel) else json.dumps(result, separators=(",", ":"))
    m.answer = (status_code, body)


class _Duplicate(ApiError):
    """A concurrent request with the same scope committed first."""

    def __init__(self) -> None:
        super().__init__("ABORTED", "a request with this Idempotency-Key was applied meanwhile")


_TABLE = IdempotencyRecord.__table__
_SCOPE = ("caller", "method", "path", "key")

# The statements are built once, on the table (not the ORM entity), with
# bound parameters: building SQLAlchemy expressions and running the ORM's
# bulk paths for every request cost more CPU than the rest of a keyed add.
SELECT_RECORD = select(_TABLE.c.digest, _TABLE.c.created_at, _TABLE.c.status_code, _TABLE.c.body).where(
    *(_TABLE.c[name] == bindparam(name) for name in _SCOPE)
)


def _upsert(insert: Any) -> Any:
    """INSERT the record; on a record of the same scope, replace it only
    when it has expired (created before :cutoff). A live record is left as
    it is and the statement changes no row: the request is a duplicate."""
    stmt = insert(_TABLE).values({c.name: bindparam(c.name) for c in _TABLE.columns})
    return stmt.on_conflict_do_update(
        index_elements=[_TABLE.c[name] for name in _SCOPE],
        set_={name: stmt.excluded[name] for name in ("digest", "created_at", "status_code", "body")},
        where=_TABLE.c.created_at < bindparam("cutoff"),
    )


_UPSERT = {"postgresql": _upsert(pg_insert), "sqlite": _upsert(sqlite_insert)}


@event.listens_for(Session, "before_commit")
def _commit_with_record(session: Session) -> None:
    m = _current.get()
    if m is None or m.answer is None:
        return
    status_code, body = m.answer
    m.answer = None  # one commit carries the answer
    if m.deadline_ms is not None and time.time() * 1000 > m.deadline_ms:
        raise ApiError("DEADLINE_EXCEEDED", "the request's deadline passed before its change was committed")
    if not m.keyed:
        return
    now = utcnow()
    params = {
        **scope_params(m),
        "digest": m.digest,
        "created_at": now,
        "status_code": status_code,
        "body": body,
        "cutoff": now - m.window,
    }
    result = session.execute(_UPSERT[session.get_bind().dialect.name], params)
    if getattr(result, "rowcount", 1) == 0:
        m.duplicate = True
        raise _Duplicate()


def scope_params(m: Mutation) -> dict[str, str]:
    return {"caller": m.caller, "method": m.method, "path": m.path, "key": m.key}


def request_digest(query: bytes, body: bytes, caller: str) -> str:
    """A digest of what makes two requests the same: the query, the body and
    the caller ("" for an internal call).

    A JSON body is compared by value (key order and spacing do not matter),
    anything else byte for byte."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except (ValueError, UnicodeDecodeError):
        canonical = b"raw:" + body
    return hashlib.sha256(b"caller:" + caller.encode() + b"\n" + query + b"\n" + canonical).hexdigest()


def _parse_deadline(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    text = raw.decode("latin-1").strip()
    if not (0 < len(text) <= 16 and text.isascii() and text.isdigit()):
        raise invalid_argument("X-Request-Deadline must be Unix time in milliseconds (1 to 16 digits)")
    return int(text)


class IdempotencyMiddleware:
    """Honours Idempotency-Key and X-Request-Deadline on mutating requests
    (see the module doc). window is how long an answer is replayed. The
    sessions come from ``app.state.sessions`` (writes) and
    ``app.state.read_sessions`` (the look-up before the call)."""

    def __init__(self, app: Any, window: timedelta) -> None:
        self.app = app
        self.window = window
        self._pruned = 0.0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS:
            await self.app(scope, receive, send)
            return
        raw_key = _header(scope, HEADER)
        try:
            deadline = _parse_deadline(_header(scope, DEADLINE_HEADER))
            if raw_key is None:
                if deadline is None:
                    await self.app(scope, receive, send)
                    return
                token = _current.set(Mutation(deadline_ms=deadline))
                try:
                    await self.app(scope, receive, send)
                finally:
                    _current.reset(token)
                return
            key = raw_key.decode("latin-1").strip()
            if not key or len(key) > MAX_KEY_LENGTH:
                raise invalid_argument(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
        except ApiError as exc:
            await _error(scope, send, exc)
            return

        body, receive = await _buffer(receive)
        who = caller_of(scope)
        caller = who.subject if who is not None else ""
        m = Mutation(
            deadline_ms=deadline,
            caller=caller,
            method=scope["method"],
            path=scope["path"],
            key=key,
            digest=request_digest(scope.get("query_string", b""), body, caller),
            window=self.window,
        )
        app_state = scope["app"].state
        self._maybe_prune(app_state.sessions)
        try:
            stored = await self._stored(app_state.read_sessions, m)
        except ApiError as exc:
            await _error(scope, send, exc)
            return
        if stored is not None:
            await _replay(stored, send)
            return

        messages: list[dict[str, Any]] = []

        async def capture(message: dict[str, Any]) -> None:
            messages.append(message)

        token = _current.set(m)
        try:
            await self.app(scope, receive, capture)
        finally:
            _current.reset(token)
        if m.duplicate:
            try:
                stored = await self._stored(app_state.sessions, m)
            except ApiError as exc:
                await _error(scope, send, exc)
                return
            if stored is not None:
                await _replay(stored, send)
                return
        for message in messages:
            await send(message)

    async def _stored(self, sessions: Any, m: Mutation) -> Row[Any] | None:
        """The record to replay, None when there is none in the window;
        INVALID_ARGUMENT when the caller used the key for another request."""
        async with sessions() as session:
            row: Row[Any] | None = (await session.execute(SELECT_RECORD, scope_params(m))).one_or_none()
        if row is None or row.created_at < utcnow() - self.window:
            return None
        if row.digest != m.digest:
            raise invalid_argument("Idempotency-Key was already used for a different request")
        return row

    def _maybe_prune(self, sessions: Any) -> None:
        """Delete records past the window, at most once per ten minutes, in the background."""
        now = time.monotonic()
        if now - self._pruned < _PRUNE_EVERY_SECONDS:
            return
        self._pruned = now
        task = asyncio.get_running_loop().create_task(prune(sessions, self.window))
        _background.add(task)
        task.add_done_callback(_background.discard)


_background: set[asyncio.Task[int]] = set()


async def prune(sessions: Any, window: timedelta) -> int:
    """Delete the records older than window; return how many went."""
    try:
        async with sessions() as session, session.begin():
            result = await session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - window)
            )
        return int(getattr(result, "rowcount", 0) or 0)
    except Exception as exc:  # a busy database: the next round prunes
        log.warning("idempotency prune failed: %r", exc)
        return 0


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


async def _replay(row: Row[Any], send: Any) -> None:
    body = row.body.encode("utf-8")
    headers = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
        (REPLAYED_HEADER, b"true"),
    ]
    await send({"type": "http.response.start", "status": row.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
