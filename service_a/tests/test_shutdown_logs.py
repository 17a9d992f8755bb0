"""A service stopped with SIGTERM (how make run, Docker and Kubernetes stop
it) writes its log to the end before it dies: its lines wait in a queue for
a writer thread, which must be flushed on that signal too, not only at a
normal exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shopkit_testing import start_server
from tests.support import SERVICE_DIR


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_keeps_the_last_log_lines(tmp_path: Path, workers: str) -> None:
    log_path = tmp_path / "service_a.log"
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
        "KAFKA_ENABLED": "false",
        "WEB_CONCURRENCY": workers,
    }
    server = start_server(SERVICE_DIR, env, log_path, timeout=120)
    deadline = time.monotonic() + 120
    while log_path.read_text(errors="replace").count("Application startup complete") < int(workers):
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.2)
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(30)
    lines = log_path.read_text(errors="replace").splitlines()
    finished = [line for line in lines if "Finished server process" in line]
    assert len(finished) == int(workers), "\n".join(lines[-20:])
    assert lines[-1] == finished[-1] or "Stopping parent process" in lines[-1], "\n".join(lines[-20:])


_LOG_THEN_SIGTERM = """
import logging, os, signal
from shopkit.logs import configure_logging
configure_logging("INFO", "text")
log = logging.getLogger("test")
for i in range(5000):
    log.info("line %d", i)
log.info("the last line")
os.kill(os.getpid(), signal.SIGTERM)
"""


def test_sigterm_flushes_the_queued_lines() -> None:
    """Lines still queued for the writer thread when SIGTERM arrives are
    written before the process dies of it (as it did before: status -15)."""
    out = subprocess.run(
        [sys.executable, "-c", _LOG_THEN_SIGTERM], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == -signal.SIGTERM
    lines = out.stderr.splitlines()
    assert len(lines) == 5001 and lines[-1].endswith("the last line"), f"{len(lines)} lines, last {lines[-1:]}"
