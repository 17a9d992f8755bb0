"""Fails when a Python module of the services or shopkit passes 400 lines.

A module a newcomer can hold in one sitting does one job; one that grows past
the limit is split by job (not by line count). Alembic's generated migration
scripts are left out. Usage: python scripts/check_module_sizes.py [ROOT]
(default: the repository); exits 1 and names each module over the limit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

MAX_LINES = 400
TREES = ("shopkit", "service_a", "service_b")
SKIPPED_PARTS = {".venv", ".mypy_cache", "__pycache__", "build"}


def modules(root: Path) -> Iterator[Path]:
    """The Python files of TREES under root, generated migrations aside."""
    for tree in TREES:
        for path in sorted((root / tree).rglob("*.py")):
            rel = path.relative_to(root)
            if SKIPPED_PARTS.intersection(rel.parts) or "alembic/versions" in rel.as_posix():
                continue
            yield path


def oversized(root: Path, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """(path relative to root, lines) of each module over limit lines."""
    found = []
    for path in modules(root):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            found.append((path.relative_to(root).as_posix(), lines))
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    found = oversized(root)
    for path, lines in found:
        sys.stderr.write(f"{path}: {lines} lines, over {MAX_LINES}: split it by job\n")
    count = sum(1 for _ in modules(root))
    if not found:
        sys.stdout.write(f"module sizes: {count} modules, none over {MAX_LINES} lines\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
