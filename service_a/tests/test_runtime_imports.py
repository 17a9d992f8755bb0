"""The service's runtime code (app/ and shopkit) never imports the test
helpers (shopkit_testing) or pytest: they are not installed in its image."""

from __future__ import annotations

from shopkit_testing import runtime_modules, test_helpers_in
from tests.support import SERVICE_DIR


def test_runtime_does_not_import_test_helpers() -> None:
    modules = runtime_modules(SERVICE_DIR)
    assert "app.main" in modules and "shopkit.kafka.relay" in modules, "the check imported the runtime"
    assert test_helpers_in(modules) == []
