"""``python -m app [--host H] [--port P]`` for a service: flags, logging, uvicorn."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, Protocol

import uvicorn

from shopkit.logs import configure_logging, logging_config


class ServeSettings(Protocol):
    """The settings serve reads: where to listen, how many processes, how to log."""

    # Read-only (properties), so that a settings class whose field is
    # narrower (log_format: Literal["text", "json"]) still matches.
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def web_concurrency(self) -> int: ...
    @property
    def log_level(self) -> str: ...
    @property
    def log_format(self) -> str: ...


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
    settings_class. argv defaults to sys.argv[1:].

    With ``web_concurrency`` (WEB_CONCURRENCY) above 1, uvicorn runs that
    many worker processes on the one port: each calls ``create_app()`` with
    no settings, so it reads the environment, which carries the flags too.
    uvicorn picks uvloop and httptools when they are installed (the services
    pin them)."""
    fields = getattr(settings_class, "model_fields", {})
    default_host = getattr(fields.get("host"), "default", None)
    default_port = getattr(fields.get("port"), "default", None)
    parser = argparse.ArgumentParser(prog="python -m app", description=description)
    parser.add_argument("--host", help=f"address to listen on (env HOST, default {default_host})")
    parser.add_argument("--port", type=int, help=f"port to listen on (env PORT, default {default_port})")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings_class(**overrides)
    options: dict[str, Any] = {"host": settings.host, "port": settings.port, "proxy_headers": False}
    if settings.web_concurrency <= 1:
        configure_logging(settings.log_level, settings.log_format)
        uvicorn.run(create_app(settings), log_config=None, workers=1, **options)
        return
    os.environ.update({k.upper(): str(v) for k, v in overrides.items()})
    uvicorn.run(
        f"{create_app.__module__}:{create_app.__qualname__}",
        factory=True,
        workers=settings.web_concurrency,
        log_config=logging_config(settings.log_level, settings.log_format),
        **options,
    )
