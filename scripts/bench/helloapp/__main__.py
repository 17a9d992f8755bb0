"""``python -m helloapp [--host H] [--port P]`` (run from scripts/bench)."""

from __future__ import annotations

from helloapp.main import Settings, create_app
from shopkit.serve import serve

if __name__ == "__main__":
    serve(create_app, Settings, description="Run the hello-world app.")
