"""``python -m app [--host H] [--port P]``: run service A with uvicorn.

Flags override the HOST and PORT environment variables; everything else is
read from the environment (see app/settings.py)."""

from __future__ import annotations

from app.main import create_app
from app.settings import Settings
from shopkit.serve import serve


def main() -> None:
    """Parse the flags and serve until interrupted."""
    serve(create_app, Settings, description="Run service A.")


if __name__ == "__main__":
    main()
