"""Logging setup: text lines in a terminal, JSON lines in production, written
to stderr by a thread of their own so that logging never blocks the event loop."""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import logging.config
import logging.handlers
import queue
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
"""The X-Request-Id of the request being served ("" outside requests)."""
traceparent: contextvars.ContextVar[str] = contextvars.ContextVar("traceparent", default="")
"""The W3C traceparent of the request being served ("" when none came in)."""


class RequestContextMiddleware:
    """Keeps the caller's X-Request-Id and traceparent for logs and onward
    calls, and echoes X-Request-Id in the response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:128]
        tokens = (request_id.set(rid), traceparent.set(headers.get(b"traceparent", b"").decode("latin-1")[:128]))

        async def send_with_id(message: dict[str, Any]) -> None:
            if rid and message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", rid.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(tokens[0])
            traceparent.reset(tokens[1])


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with snake_case keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


QUEUE_SIZE = 10_000
"""Log lines that may wait for the writer thread before new ones are dropped."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler that drops a record when the queue is full instead of
    blocking the event loop or raising."""

    dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            _DroppingQueueHandler.dropped += 1


_listener: logging.handlers.QueueListener | None = None


def queued_stderr_handler() -> logging.Handler:
    """A handler that formats a record in the caller's thread (the request id
    is read there) and hands the line to a thread that writes it to stderr,
    so a slow or blocked stderr never stalls the event loop. At most
    QUEUE_SIZE (10,000) lines wait; more are dropped. The writer thread is
    flushed and stopped at exit and at SIGTERM. One per process: a second call replaces the
    first."""
    global _listener
    if _listener is not None:
        _listener.stop()
    lines: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_SIZE)
    _listener = logging.handlers.QueueListener(lines, logging.StreamHandler(sys.stderr))
    _listener.start()
    _flush_on_sigterm()
    return _DroppingQueueHandler(lines)


def _stop_listener() -> None:
    global _listener
    listener, _listener = _listener, None
    if listener is not None:
        listener.stop()


atexit.register(_stop_listener)


def _flush_on_sigterm() -> None:
    """Write the waiting lines out before SIGTERM ends the process.

    uvicorn answers SIGTERM with a graceful shutdown and then raises the
    signal again under the handler it found at start; with the default one
    the process dies there, without running atexit, and the queued lines
    (its last ones: "Application shutdown complete", "Finished server
    process") would be lost. This handler writes them, then dies of the
    signal as before. Only installed over the default handler, from the
    main thread (where Python handles signals)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    signal.signal(signal.SIGTERM, _flush_then_terminate)


def _flush_then_terminate(signum: int, _frame: object) -> None:
    _stop_listener()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def logging_config(level: str = "INFO", fmt: str = "text") -> dict[str, Any]:
    """The :func:`logging.config.dictConfig` of a service process: every
    logger (uvicorn's too) to stderr in fmt ("text" or "json") through
    :func:`queued_stderr_handler`. uvicorn applies it in each worker process."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": _RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"format": TEXT_FORMAT}},
        "handlers": {
            "stderr": {
                "()": queued_stderr_handler,
                "formatter": fmt if fmt == "json" else "text",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            **{name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
            "httpx": {"level": "WARNING"},
            # aiokafka logs every failed reconnect at ERROR; the bridge reports outages itself.
            "aiokafka": {"level": "CRITICAL"},
        },
    }


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send every logger (uvicorn's too) to stderr in the given format, without blocking."""
    logging.config.dictConfig(logging_config(level, fmt))
