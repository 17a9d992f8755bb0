"""shopkit.kafka.admin: which topics are created (creating them against a real
broker is covered by tests/integration)."""

from __future__ import annotations

import pytest

from shopkit.kafka.admin import missing_topics


@pytest.mark.parametrize(
    ("wanted", "existing", "missing"),
    [
        (["a", "b"], ["a", "b", "c"], []),
        (["b", "a", "b"], [], ["a", "b"]),
        (["a", "c"], ["a"], ["c"]),
        ([], ["a"], []),
    ],
)
def test_missing_topics(wanted: list[str], existing: list[str], missing: list[str]) -> None:
    assert missing_topics(wanted, existing) == missing
