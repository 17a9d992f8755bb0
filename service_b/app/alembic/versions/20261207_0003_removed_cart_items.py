"""Cart lines removed by service B, remembered while A's master may lag.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A database made before migrations existed (create_all of the models,
    # stamped 0001 on its first start) already has the table.
    if sa.inspect(op.get_bind()).has_table("removed_cart_items"):
        return
    op.create_table(
        "removed_cart_items",
        sa.Column("item_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("removed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("item_id"),
    )
    op.create_index("ix_removed_cart_items_removed_at", "removed_cart_items", ["removed_at"])


def downgrade() -> None:
    op.drop_index("ix_removed_cart_items_removed_at", table_name="removed_cart_items")
    op.drop_table("removed_cart_items")
