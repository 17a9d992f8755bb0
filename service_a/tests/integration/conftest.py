"""Fixtures of the integration tests: a real broker (``kafka``) and unique
topic names (``run_id``), from :mod:`shopkit_testing`."""

from __future__ import annotations

from shopkit_testing import kafka, run_id

__all__ = ["kafka", "run_id"]
