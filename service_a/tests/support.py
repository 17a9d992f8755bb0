"""Test utilities shared by the unit and integration tests: backends, real
uvicorn servers and waiting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVICE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = SERVICE_DIR.parent
IN_CI = bool(os.environ.get("CI"))


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


def kafka_bootstrap() -> str:
    """The broker the integration tests use (KAFKA_BROKERS, default 127.0.0.1:9092)."""
    return os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")


def broker_reachable(bootstrap: str | None = None) -> bool:
    """Whether a TCP connection to the first bootstrap server succeeds."""
    host, _, port = (bootstrap or kafka_bootstrap()).split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


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
    """Start ``python -m app`` in service_dir on a free port and wait for /healthz."""
    port = free_port()
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
def running(service_dir: Path, env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """start_server as a context manager that stops the server at the end."""
    server = start_server(service_dir, env, log_path)
    try:
        yield server
    finally:
        server.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll check until it returns True; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.2)


async def create_stock(
    client: httpx.AsyncClient, product_id: int, quantity: int = 10, price_cents: int = 100, name: str | None = None
) -> dict[str, Any]:
    """Create a stock item through the API and return it."""
    resp = await client.post(
        "/stock",
        json={
            "product_id": product_id,
            "product_name": name or f"product {product_id}",
            "quantity": quantity,
            "price_cents": price_cents,
        },
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def assert_error(resp: Any, status: int, code: str, *, contains: str = "") -> dict[str, Any]:
    """Check an error response's status, code and message; return its body."""
    body = resp.json()
    assert (resp.status_code, body.get("code")) == (status, code), resp.text
    assert isinstance(body.get("message"), str) and body["message"], resp.text
    assert contains in body["message"], f"{contains!r} not in {body['message']!r}"
    return body
