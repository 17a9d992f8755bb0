"""Service A's migrations (app/alembic) against its models (app/db.py)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from app.main import MIGRATIONS
from shopkit.migrations import database_revision, head_revision
from shopkit_testing import schema_differences


@pytest.mark.parametrize("legacy", [False, True], ids=["empty database", "database made by create_all"])
async def test_migrations_build_the_models_schema(database_url: str, legacy: bool) -> None:
    assert await schema_differences(database_url, MIGRATIONS, legacy=legacy) == []


async def test_started_app_is_at_the_head_revision(app: FastAPI) -> None:
    assert await database_revision(app.state.engine) == head_revision(MIGRATIONS)
