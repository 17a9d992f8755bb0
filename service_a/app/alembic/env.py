"""Alembic's entry point for service A's migrations (see shopkit.migrations)."""

from app import db as _tables  # noqa: F401 - the service's tables join shopkit.db.Base
from app.settings import Settings
from shopkit.migrations import run_env

run_env(lambda: Settings().database_url)
