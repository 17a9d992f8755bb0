"""The check that a service's runtime code does not import the test helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import app, shopkit
for package in (app, shopkit):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".alembic" not in module.name:
            importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


def runtime_modules(service_dir: Path) -> list[str]:
    """The modules loaded in a fresh interpreter, in service_dir, once every
    module of the service's ``app`` package and of ``shopkit`` is imported
    (Alembic's migration scripts aside: Alembic loads those itself)."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], cwd=service_dir, capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stderr
    modules: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return modules


def test_helpers_in(modules: list[str]) -> list[str]:
    """Those of modules that belong to the test helpers or pytest."""
    return [m for m in modules if m.split(".")[0] in ("shopkit_testing", "pytest", "_pytest")]


test_helpers_in.__test__ = False  # type: ignore[attr-defined]  # a helper, despite its name
