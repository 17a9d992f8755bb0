"""Waiting for a condition and checking error answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


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
