"""Fresh databases for a test (SQLite, or PostgreSQL when configured) and the schema check of the migrations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from shopkit import db


def database_backends(pg_env: str) -> list[str]:
    """The backends to run a test on: "sqlite", and "postgres" too when the
    environment variable pg_env holds a PostgreSQL URL."""
    return ["sqlite", "postgres"] if os.environ.get(pg_env) else ["sqlite"]


async def fresh_database_url(pg_env: str | None, sqlite_path: Path) -> str:
    """A database URL with no tables: the URL in the environment variable
    pg_env when it is set (every table in it is dropped), else the SQLite file
    sqlite_path. A set but unreachable database fails the test."""
    if pg_env is None or not os.environ.get(pg_env):
        return f"sqlite+aiosqlite:///{sqlite_path}"
    url = db.normalize_database_url(os.environ[pg_env])
    engine = db.make_engine(url)
    try:
        await db.drop_all_tables(engine)
    except Exception as exc:
        pytest.fail(f"{pg_env} is set but the database is unreachable: {exc!r}")
    finally:
        await engine.dispose()
    return url


async def schema_differences(url: str, script_location: Path, *, legacy: bool = False) -> list[Any]:
    """What Alembic's autogenerate finds between the schema that the
    migrations of script_location build on the empty database url and the
    models (shopkit.db.Base, with the service's tables imported): [] when
    they agree. The migrations are also taken down to nothing and up again
    on the way. With legacy, the database is first built the way services did
    before they had migrations (create_all), to be stamped and upgraded.
    (Needs alembic, a dependency of the services.)"""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from shopkit import migrations

    engine = db.make_engine(url)
    try:
        if legacy:
            async with engine.begin() as conn:
                await conn.run_sync(db.Base.metadata.create_all)
        await migrations.upgrade(engine, script_location)
        cfg = migrations.alembic_config(script_location)

        def down_and_up(conn: Any) -> None:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
            command.upgrade(cfg, "head")

        def compare(conn: Any) -> list[Any]:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, db.Base.metadata))

        async with engine.begin() as conn:
            await conn.run_sync(down_and_up)
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()
