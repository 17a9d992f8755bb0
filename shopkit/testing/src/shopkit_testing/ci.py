"""Whether this run is CI, and what a missing broker or database does then."""

from __future__ import annotations

import os

import pytest

IN_CI = bool(os.environ.get("CI"))
"""True when CI is set: a missing broker or database then fails a test instead of skipping it."""


def missing_dependency(message: str) -> None:
    """Skip the test when a broker or database is missing, or fail it in CI,
    where every test must run."""
    if IN_CI:
        pytest.fail(f"{message} (CI is set: a missing dependency is a failure)")
    pytest.skip(message)
