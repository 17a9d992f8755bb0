"""The idempotency records of service A in one transaction with the change: keyed by caller, no claims.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 07:30:00
"""

from collections.abc import Sequence

from shopkit.migrations import replace_idempotency_table_0002, restore_idempotency_table_0001

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    replace_idempotency_table_0002()


def downgrade() -> None:
    restore_idempotency_table_0001()
