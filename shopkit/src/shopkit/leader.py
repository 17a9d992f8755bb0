"""One holder at a time, across the processes that share a database.

A service may run as several uvicorn workers and several instances on one
database; each runs an outbox relay, but the outbox must be published by one
relay at a time, in id order, or one user's events could reach Kafka out of
order (a removal before the addition it undoes). :class:`LeaderLock` is that
election: a PostgreSQL session-level advisory lock, or for an SQLite file an
exclusive ``flock`` on a file beside it. Either is released by the operating
system or the server when its holder dies, so a standby takes over.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class LeaderLock(Protocol):
    """A lock that at most one process holds; every method may be called from one task only."""

    async def acquire(self) -> bool:
        """Take the lock without waiting; True when it is held now (also when it was already)."""
        ...

    async def check(self) -> None:
        """Raise when a held lock may have been lost (its connection died)."""
        ...

    async def release(self) -> None:
        """Give the lock up (no-op when not held)."""
        ...


def leader_lock(engine: AsyncEngine, name: str) -> LeaderLock:
    """The lock called name among the processes using engine's database.

    PostgreSQL: an advisory lock on a connection of engine's pool, kept while
    held. SQLite file: ``flock`` on ``<file>.<name>.lock``. SQLite in memory
    is private to the process, so its lock is always held."""
    if engine.dialect.name == "postgresql":
        return _AdvisoryLock(engine, name)
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return _NoLock()
    return _FileLock(Path(f"{database}.{name}.lock"))


class _NoLock:
    async def acquire(self) -> bool:
        return True

    async def check(self) -> None:
        return None

    async def release(self) -> None:
        return None


class _FileLock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    async def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def check(self) -> None:
        return None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock


class _AdvisoryLock:
    def __init__(self, engine: AsyncEngine, name: str) -> None:
        self._engine = engine
        # Advisory lock keys are signed 64-bit integers.
        self._key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = await self._engine.connect()
        try:
            held = (await conn.execute(select(func.pg_try_advisory_lock(self._key)))).scalar_one()
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if not held:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def check(self) -> None:
        if self._conn is not None:
            await self._conn.execute(text("SELECT 1"))
            await self._conn.commit()

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing the server session is what surely drops a session-level
            # lock; a connection merely returned to the pool would keep it.
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
