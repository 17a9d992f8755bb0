"""schemathesis hooks of TestSchemathesis (tests/e2e/schemathesis_test.go).

Every mutation gets an Idempotency-Key of its own. A key is remembered with
the request it first came with, and the same key with another request is
refused with 400 (the key was used for something else): an outcome of the
requests made before, not of this one. Generated keys repeat ("0", "00"),
so each call gets a fresh UUID instead; the header's own rules (1 to 255
bytes, not empty) have their tests in gateway/internal/events.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis

IDEMPOTENCY_KEY = "Idempotency-Key"
MAX_KEY_BYTES = 255


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    key = (case.headers or {}).get(IDEMPOTENCY_KEY)
    # A key outside the header's rules is the bad input of a negative case:
    # it is sent as generated, to be refused.
    if key and len(key.encode()) <= MAX_KEY_BYTES:
        case.headers[IDEMPOTENCY_KEY] = str(uuid.uuid4())
