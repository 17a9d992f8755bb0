"""Ports for the servers tests start."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import tempfile
from pathlib import Path


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
