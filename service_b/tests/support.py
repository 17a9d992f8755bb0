"""What service B's tests share besides :mod:`shopkit_testing`: where this
service, service A and the repository are."""

from __future__ import annotations

from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = SERVICE_DIR.parent
SERVICE_A_DIR = REPO_ROOT / "service_a"
