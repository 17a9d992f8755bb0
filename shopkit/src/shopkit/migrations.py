"""Schema migrations with Alembic, the same way in both services.

Each service keeps its migrations in ``app/alembic/`` (``env.py`` calls
:func:`run_env`; ``versions/`` holds the revisions) and ``alembic.ini`` next
to ``app/`` for the ``alembic`` command (``alembic revision --autogenerate -m
...`` in the service's folder, with DATABASE_URL pointing at a database at the
head revision). The service upgrades its database to the head revision when
it starts (:func:`upgrade`), on SQLite and PostgreSQL alike:

- A database created before the services had migrations (tables, but no
  ``alembic_version``) is stamped with the first revision, which is that
  schema, and then upgraded.
- Processes that start together (several workers) upgrade one after the
  other, so the later ones find the schema at the head and change nothing:
  on PostgreSQL the upgrade holds a transaction-level advisory lock, on an
  SQLite file an exclusive lock on ``<file>.migrate.lock`` next to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator, Callable
from logging.config import fileConfig
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect, pool, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_engine_from_config, async_sessionmaker

from shopkit import db
from shopkit import idempotency as _idempotency  # noqa: F401 - its table joins Base
from shopkit.db import Base, normalize_database_url

log = logging.getLogger(__name__)

# The key of the PostgreSQL advisory lock held while migrating (any constant
# that no other code of the database uses).
_LOCK_KEY = 0x73686F70  # "shop"


def alembic_config(script_location: Path, url: str = "") -> Config:
    """The Alembic configuration of a service whose migrations are in
    script_location (its ``app/alembic``), for database url."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    if url:
        cfg.set_main_option("sqlalchemy.url", normalize_database_url(url).replace("%", "%%"))
    return cfg


def _upgrade(connection: Connection, cfg: Config) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    cfg.attributes["connection"] = connection
    tables = set(inspect(connection).get_table_names())
    if tables and "alembic_version" not in tables:
        base = ScriptDirectory.from_config(cfg).get_base()
        log.info("database has tables but no migration history: stamping revision %s", base)
        command.stamp(cfg, base or "base")
    command.upgrade(cfg, "head")


async def upgrade(engine: AsyncEngine, script_location: Path) -> None:
    """Upgrade engine's database to the head revision of script_location,
    in one transaction (see the module doc)."""
    cfg = alembic_config(script_location)
    async with _sqlite_file_lock(engine), engine.begin() as conn:
        await conn.run_sync(_upgrade, cfg)


@contextlib.asynccontextmanager
async def _sqlite_file_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    database = engine.url.database or ""
    if engine.url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate.lock", "a") as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


async def open_database(url: str, script_location: Path) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """:func:`shopkit.db.open_database` with the schema upgraded to the head
    revision of script_location (the service's ``app/alembic``)."""
    return await db.open_database(url, lambda engine: upgrade(engine, script_location))


def _run(connection: Connection, metadata: MetaData) -> None:
    # render_as_batch: SQLite changes most tables by copying them, and
    # autogenerate writes migrations that do so there and plain ALTERs elsewhere.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_new_engine(cfg: Config, metadata: MetaData) -> None:
    section: dict[str, Any] = cfg.get_section(cfg.config_ini_section, {})
    engine = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run, metadata)
    finally:
        await engine.dispose()


def run_env(database_url: Callable[[], str], metadata: MetaData | None = None) -> None:
    """The body of a service's ``app/alembic/env.py``: migrate the database of
    the connection :func:`upgrade` passes or, from the ``alembic`` command, of
    ``sqlalchemy.url`` when set, else of database_url() (the service's
    DATABASE_URL). metadata defaults to :class:`shopkit.db.Base`'s, which holds
    the service's tables once its ``app.db`` is imported."""
    metadata = metadata if metadata is not None else Base.metadata
    cfg = context.config
    connection = cfg.attributes.get("connection")
    if connection is not None:
        _run(connection, metadata)
        return
    if cfg.config_file_name:
        fileConfig(cfg.config_file_name, disable_existing_loggers=False)
    if not cfg.get_main_option("sqlalchemy.url"):
        cfg.set_main_option("sqlalchemy.url", normalize_database_url(database_url()).replace("%", "%%"))
    if context.is_offline_mode():
        context.configure(url=cfg.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_with_new_engine(cfg, metadata))


# The tables shopkit gives every service (outbox, inbox, idempotency), as
# migration steps that both services' revisions call. A step is frozen once
# released: a later change to these tables is a new step, called by a new
# revision of each service.


def create_shared_tables_0001() -> None:
    """Create ``outbox``, ``inbox`` and ``idempotency`` as they were at each
    service's revision 0001."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"])
    op.create_table(
        "idempotency",
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("committed", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("method", "path", "key"),
    )
    op.create_index("ix_idempotency_created_at", "idempotency", ["created_at"])


def drop_shared_tables_0001() -> None:
    """Undo :func:`create_shared_tables_0001`."""
    for table in ("idempotency", "inbox", "outbox"):
        op.drop_table(table)


def replace_idempotency_table_0002() -> None:
    """Give ``idempotency`` its one-transaction form: keyed by the caller
    too, holding only committed mutations with their answers (no claim, no
    ``committed`` flag). Its rows are short-lived answers to replay, not
    data; the old ones cannot be given a caller, so they are dropped."""
    op.drop_index("ix_idempotency_created_at", table_name="idempotency")
    op.drop_table("idempotency")
    op.create_table(
        "idempotency",
        sa.Column("caller", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("caller", "method", "path", "key"),
    )
    op.create_index("ix_idempotency_created_at", "idempotency", ["created_at"])


def restore_idempotency_table_0001() -> None:
    """Undo :func:`replace_idempotency_table_0002` (the records are dropped again)."""
    op.drop_index("ix_idempotency_created_at", table_name="idempotency")
    op.drop_table("idempotency")
    op.create_table(
        "idempotency",
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("committed", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("method", "path", "key"),
    )
    op.create_index("ix_idempotency_created_at", "idempotency", ["created_at"])


def head_revision(script_location: Path) -> str | None:
    """The head revision of the migrations in script_location."""
    return ScriptDirectory.from_config(alembic_config(script_location)).get_current_head()


async def database_revision(engine: AsyncEngine) -> str | None:
    """The revision engine's database is at (None before any)."""

    def read(connection: Connection) -> str | None:
        from alembic.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)
