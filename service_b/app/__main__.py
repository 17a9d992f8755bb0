"""``python -m app [--host H] [--port P]``: run service B with uvicorn.

Flags override the HOST and PORT environment variables; everything else is
read from the environment (see app/settings.py)."""

from __future__ import annotations

import argparse

import uvicorn

from app.logs import configure_logging
from app.main import create_app
from app.settings import Settings


def main() -> None:
    """Parse the flags and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m app", description="Run service B.")
    parser.add_argument("--host", help="address to listen on (env HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (env PORT, default 8001)")
    args = parser.parse_args()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
