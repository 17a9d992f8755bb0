"""pytest utilities of the services' test suites: real uvicorn servers, fresh
databases, the broker, waiting, and error-response checks.

Needs the ``testing`` extra (pytest, httpx). The fixtures ``client`` (an
in-process HTTP client of the conftest's ``app`` fixture), ``kafka`` and
``run_id`` are defined here; a conftest makes them available by importing
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shopkit import db
from shopkit.auth import ADMIN_SCOPE, SCOPES_HEADER, USER_ID_HEADER
from shopkit.events import Event

IN_CI = bool(os.environ.get("CI"))
"""True when CI is set: a missing broker or database then fails a test instead of skipping it."""


def missing_dependency(message: str) -> None:
    """Skip the test when a broker or database is missing, or fail it in CI,
    where every test must run."""
    if IN_CI:
        pytest.fail(f"{message} (CI is set: a missing dependency is a failure)")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Ports for servers the tests start. A port from free_port can be handed out
# again by the kernel (to another :0 or as the local port of an outgoing
# connection) before the server binds it. server_port takes ports from a band
# just below the kernel's ephemeral range instead, in turn across every test
# process through a locked counter file shared with the Go test harness
# (tests/harness/ports.go), so no two servers of a run get the same port.
_PORT_BAND = 10000
_LOWEST_PORT = 10000
_PORT_COUNTER = Path(tempfile.gettempdir()) / "shop-harness-ports.counter"


def _port_band() -> tuple[int, int] | None:
    hi = 32768
    with contextlib.suppress(OSError, ValueError):
        hi = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    lo = max(hi - _PORT_BAND, _LOWEST_PORT)
    return (lo, hi) if hi - lo >= 1000 else None


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def server_port() -> int:
    """A port on 127.0.0.1 for a server a test starts (see above); free_port
    on machines whose ephemeral range leaves no band below it."""
    band = _port_band()
    if band is None:
        return free_port()
    lo, hi = band
    with open(_PORT_COUNTER, "a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        try:
            port = int(counter.read().strip())
        except ValueError:
            port = lo
        if not lo <= port < hi:
            port = lo
        for _ in range(hi - lo):
            candidate, port = port, port + 1 if port + 1 < hi else lo
            if _bindable(candidate):
                counter.seek(0)
                counter.truncate()
                counter.write(f"{port}\n")
                return candidate
    raise RuntimeError(f"no free port in [{lo}, {hi})")


def kafka_bootstrap() -> str:
    """The broker the integration tests use (KAFKA_BROKERS, default 127.0.0.1:9092)."""
    return os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")


def local_kafka_script_env() -> dict[str, str] | None:
    """The environment under which ``scripts/kafka.sh`` controls the broker the
    tests use, or None when that broker is not a local one of the script.

    The script's broker listens on 127.0.0.1:$KAFKA_PORT. When KAFKA_BROKERS
    names one loopback address, that is the broker: KAFKA_PORT is taken from
    it (so a run with the ports moved stops and starts the right broker).
    """
    brokers = [b.strip() for b in kafka_bootstrap().split(",") if b.strip()]
    if len(brokers) != 1:
        return None
    host, _, port = brokers[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        return None
    env = dict(os.environ)
    configured = env.get("KAFKA_PORT")
    if configured and configured != port:
        return None
    env["KAFKA_PORT"] = port
    return env


def broker_reachable(bootstrap: str | None = None) -> bool:
    """Whether a TCP connection to the first bootstrap server succeeds."""
    host, _, port = (bootstrap or kafka_bootstrap()).split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def kafka() -> str:
    """The bootstrap address of a running broker (skip, or fail in CI, when there is none)."""
    bootstrap = kafka_bootstrap()
    if not broker_reachable(bootstrap):
        missing_dependency(f"no Kafka broker at {bootstrap}: start one with scripts/kafka.sh start")
    return bootstrap


@pytest.fixture
def run_id() -> str:
    """A suffix that makes topic names and group ids unique to the test."""
    return uuid.uuid4().hex[:10]


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


@contextlib.asynccontextmanager
async def started(app: FastAPI) -> AsyncIterator[FastAPI]:
    """app with its lifespan run around the block: schema created and Kafka
    bridge started on entry, everything stopped on exit."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that calls the test's ``app`` fixture in-process. An
    unhandled error answers 500 as it would from a server, instead of being
    raised in the test."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@dataclass
class Server:
    """A service running as a real uvicorn process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the process (TERM, then KILL after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(service_dir: Path, env: dict[str, str], log_path: Path, timeout: float = 30.0) -> Server:
    """Start ``python -m app`` in service_dir on a free port and wait for /healthz.

    The process gets the test's environment plus env, HOST=127.0.0.1, the
    port, and KAFKA_RETRY_MAX_SECONDS=1 unless env sets it; its output goes
    to log_path."""
    port = server_port()
    full_env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    full_env.setdefault("KAFKA_RETRY_MAX_SECONDS", "1")
    log_file = open(log_path, "ab")  # noqa: SIM115 - kept open for the process's lifetime
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "--port", str(port)],
        cwd=service_dir,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{service_dir.name} exited with {process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{service_dir.name} did not become healthy in {timeout} s:\n{server.log_tail()}")


@contextlib.contextmanager
def running(service_dir: Path, env: dict[str, str], log_path: Path, timeout: float = 30.0) -> Iterator[Server]:
    """start_server as a context manager that stops the server at the end."""
    server = start_server(service_dir, env, log_path, timeout)
    try:
        yield server
    finally:
        server.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll check every 0.2 s until it returns True; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.2)


def assert_error(resp: Any, status: int, code: str, *, contains: str = "") -> dict[str, Any]:
    """Check an error response's status, code and message; return its body."""
    body: dict[str, Any] = resp.json()
    assert (resp.status_code, body.get("code")) == (status, code), resp.text
    assert isinstance(body.get("message"), str) and body["message"], resp.text
    assert contains in body["message"], f"{contains!r} not in {body['message']!r}"
    return body


def as_user(user_id: int, *scopes: str) -> dict[str, str]:
    """The identity headers the gateway sends for a token with subject
    user_id and scopes (none: a plain user)."""
    return {USER_ID_HEADER: str(user_id), SCOPES_HEADER: " ".join(scopes)}


def as_admin(user_id: int) -> dict[str, str]:
    """as_user for an administrator (scope ``shop:admin``)."""
    return as_user(user_id, ADMIN_SCOPE)


def event_record(
    type_: str, data: dict[str, Any], event_id: str | None = None, source: str = "/test"
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The Kafka record (value, headers) of an event as the services publish
    it: CloudEvents in binary content mode, a new id unless event_id is given."""
    return Event(
        id=event_id or str(uuid.uuid4()), type=type_, source=source, time="2026-11-25T00:00:00.000000Z", data=data
    ).to_record()


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
