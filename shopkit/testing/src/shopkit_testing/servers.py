"""Services under test: in-process (the ``client`` and ``bare_client`` fixtures
of the conftest's ``app``) and as real uvicorn processes (:func:`running`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from shopkit_testing.identity import TEST_IDENTITY, as_service
from shopkit_testing.ports import server_port


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
