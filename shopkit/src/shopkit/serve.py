"""``python -m app [--host H] [--port P]`` for a service: flags, logging, uvicorn."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Protocol

import uvicorn

from shopkit.logs import configure_logging


class ServeSettings(Protocol):
    """The settings serve reads: where to listen and how to log."""

    host: str
    port: int
    log_level: str
    log_format: str


def serve(
    create_app: Callable[[Any], Any],
    settings_class: Callable[..., ServeSettings],
    *,
    description: str,
    argv: list[str] | None = None,
) -> None:
    """Parse the flags, configure logging and serve until interrupted.

    ``--host`` and ``--port`` override the HOST and PORT environment
    variables; everything else is read from the environment by
    settings_class. argv defaults to sys.argv[1:]."""
    fields = getattr(settings_class, "model_fields", {})
    default_host = getattr(fields.get("host"), "default", None)
    default_port = getattr(fields.get("port"), "default", None)
    parser = argparse.ArgumentParser(prog="python -m app", description=description)
    parser.add_argument("--host", help=f"address to listen on (env HOST, default {default_host})")
    parser.add_argument("--port", type=int, help=f"port to listen on (env PORT, default {default_port})")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings_class(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)
