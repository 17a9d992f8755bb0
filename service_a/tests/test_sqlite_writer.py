"""shopkit.sqlite: a write transaction holds the database's writer file lock
from BEGIN to COMMIT or ROLLBACK, and statements return their rows."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from shopkit import sqlite


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases it when taken
    return True


@pytest.mark.parametrize("end", ["commit", "rollback"])
async def test_writer_lock_is_held_for_the_transaction(tmp_path: Path, end: str) -> None:
    lock = tmp_path / "db.writer-lock"
    conn = await sqlite.connector(str(tmp_path / "db"), write_lock=str(lock))()
    try:
        # As shopkit.db's writer: BEGIN is explicit (set on the connection's thread).
        await conn._execute(setattr, conn._conn, "isolation_level", None)
        await conn.cursor().execute("CREATE TABLE t (x INTEGER)")
        assert _lock_is_free(lock)
        await conn.cursor().execute(sqlite.BEGIN_WRITE)
        await conn.cursor().execute("INSERT INTO t VALUES (1)")
        assert not _lock_is_free(lock), "another process could write during the transaction"
        await (conn.commit() if end == "commit" else conn.rollback())
        assert _lock_is_free(lock), f"the lock outlived the {end}"
        rows = await (await conn.cursor().execute("SELECT count(*) FROM t")).fetchall()
        assert rows == [(1 if end == "commit" else 0,)]
    finally:
        await conn.close()
