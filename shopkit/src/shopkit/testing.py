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
import json
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

from shopkit import db, identity
from shopkit.events import Event
from shopkit.identity import ADMIN_SCOPE, ASSERTION_HEADER, SERVICE_SCOPE

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
    """An HTTP client that calls the test's ``app`` fixture in-process, as a
    service with scopes ``shop:service shop:admin`` unless a request sends
    other identity headers (:func:`as_user`). An unhandled error answers 500
    as it would from a server, instead of being raised in the test."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = as_service(audience=app.state.settings.identity_audience)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as http:
        yield http


@pytest.fixture
async def bare_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``client``, but sending no identity header of its own."""
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

    The process gets the test's environment, the test identity keys
    (TEST_IDENTITY), env, HOST=127.0.0.1, the port, and KAFKA_RETRY_MAX_SECONDS=1 unless env sets it; its output goes
    to log_path."""
    port = server_port()
    full_env = {**os.environ, **TEST_IDENTITY.env(), **env, "PORT": str(port), "HOST": "127.0.0.1"}
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


def _write_key(directory: Path, issuer: str) -> tuple[Path, Path]:
    """A new Ed25519 key for issuer: (private JWK file, public JWKS file)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from jwt.algorithms import OKPAlgorithm

    key = Ed25519PrivateKey.generate()
    private = json.loads(OKPAlgorithm.to_jwk(key))
    public = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    kid = f"test-{issuer}-{uuid.uuid4().hex[:8]}"
    private.update(kid=kid, alg="EdDSA", use="sig")
    public.update(kid=kid, alg="EdDSA", use="sig")
    private_path, public_path = directory / f"{issuer}.key.json", directory / f"{issuer}.jwks.json"
    private_path.write_text(json.dumps(private))
    private_path.chmod(0o600)
    public_path.write_text(json.dumps({"keys": [public]}))
    return private_path, public_path


class TestIdentity:
    """Signing keys of a test run, made once per process in a temporary
    directory: one as the gateway (``shop-gateway``, may assert users) and one
    as service B (``service_b``), and the settings that make a service trust
    both."""

    __test__ = False  # not a test class, despite its name

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="shop-identity-"))
        gw_key, gw_jwks = _write_key(self.directory, "shop-gateway")
        b_key, b_jwks = _write_key(self.directory, "service_b")
        self.gateway = identity.Signer(str(gw_key), "shop-gateway", ttl_seconds=identity.MAX_LIFETIME_SECONDS)
        self.service_b = identity.Signer(str(b_key), "service_b", ttl_seconds=identity.MAX_LIFETIME_SECONDS)
        self.keys = f"shop-gateway={gw_jwks},service_b={b_jwks}"
        self.service_b_key = str(b_key)

    def env(self) -> dict[str, str]:
        """The environment variables of a service process that trusts these keys."""
        return {"IDENTITY_KEYS": self.keys, "IDENTITY_SIGNING_KEY": self.service_b_key}

    def settings(self) -> dict[str, str]:
        """The same as Settings keyword arguments."""
        return {"identity_keys": self.keys, "identity_signing_key": self.service_b_key}


TEST_IDENTITY = TestIdentity()
"""The keys of this test process (see TestIdentity)."""

_audience = "service_a"


def use_audience(audience: str) -> None:
    """Set the service the identity helpers below sign for by default (a
    service's conftest calls it once)."""
    global _audience
    _audience = audience


def as_user(user_id: int, *scopes: str, audience: str = "") -> dict[str, str]:
    """The identity header the gateway sends for a token with subject user_id
    and scopes (none: a plain user)."""
    token = TEST_IDENTITY.gateway.assertion(audience or _audience, scopes, str(user_id))
    return {ASSERTION_HEADER: token}


def as_admin(user_id: int, audience: str = "") -> dict[str, str]:
    """as_user for an administrator (scope ``shop:admin``)."""
    return as_user(user_id, ADMIN_SCOPE, audience=audience)


def as_service(*scopes: str, audience: str = "", issuer: str = "shop-gateway") -> dict[str, str]:
    """The identity header of a service calling (the gateway by default; or
    ``service_b``) with scopes (default ``shop:service shop:admin``: the
    unrestricted caller of the services' own tests)."""
    signer = TEST_IDENTITY.service_b if issuer == "service_b" else TEST_IDENTITY.gateway
    return {ASSERTION_HEADER: signer.assertion(audience or _audience, scopes or (SERVICE_SCOPE, ADMIN_SCOPE))}


def forged_assertions(audience: str = "") -> list[tuple[str, list[tuple[str, str]]]]:
    """Identity headers a service must refuse with 401, by name: missing,
    malformed, for another audience, expired, too long-lived, a user asserted
    by an issuer that may not, a service posing as another, an untrusted key,
    HS256 and ``none``, two assertions, and X-User-Id / X-Auth-Scopes alone."""
    import jwt as pyjwt

    aud = audience or _audience
    now = time.time()
    gw, b = TEST_IDENTITY.gateway, TEST_IDENTITY.service_b

    def signed(signer: identity.Signer, claims: dict[str, Any], kid: str | None = None) -> str:
        key = signer._key  # noqa: SLF001 - a test forging tokens with the real keys
        return pyjwt.encode(claims, key.key, algorithm="EdDSA", headers={"kid": kid or key.key_id})

    def claims(**over: Any) -> dict[str, Any]:
        base = {"iss": "shop-gateway", "sub": "10", "aud": aud, "iat": int(now), "exp": int(now) + 60}
        base.update(over)
        return base

    untrusted = identity.Signer(
        str(_write_key(Path(tempfile.mkdtemp(prefix="shop-untrusted-")), "shop-gateway")[0]), "x"
    )
    header = ASSERTION_HEADER
    return [
        ("missing", []),
        ("not a JWT", [(header, "not-a-jwt")]),
        ("identity headers only", [("X-User-Id", "10"), ("X-Auth-Scopes", "shop:admin shop:service")]),
        ("other audience", [(header, signed(gw, claims(aud="another-service")))]),
        ("two audiences", [(header, signed(gw, claims(aud=[aud, "another-service"])))]),
        ("expired", [(header, signed(gw, claims(iat=int(now) - 600, exp=int(now) - 60)))]),
        ("too long-lived", [(header, signed(gw, claims(exp=int(now) + 3600)))]),
        ("no exp", [(header, signed(gw, {k: v for k, v in claims().items() if k != "exp"}))]),
        ("user from service_b", [(header, signed(b, claims(iss="service_b", scope="shop:admin")))]),
        ("service_b as the gateway", [(header, signed(b, claims(iss="service_b", sub="svc:shop-gateway")))]),
        ("service_b key, gateway issuer", [(header, signed(b, claims(scope="shop:admin")))]),
        ("untrusted key", [(header, signed(untrusted, claims(scope="shop:admin")))]),
        ("unknown issuer", [(header, signed(gw, claims(iss="mallory")))]),
        ("sub not a user id", [(header, signed(gw, claims(sub="0")))]),
        (
            "HS256",
            [
                (
                    header,
                    pyjwt.encode(
                        claims(), "secret-secret-secret-secret-32b!", algorithm="HS256", headers={"kid": gw._key.key_id}
                    ),
                )
            ],
        ),  # noqa: SLF001
        ("alg none", [(header, pyjwt.encode(claims(), "", algorithm="none", headers={"kid": gw._key.key_id}))]),  # noqa: SLF001
        ("twice", [(header, gw.assertion(aud, (), "10")), (header, gw.assertion(aud, (), "10"))]),
    ]


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
