"""Initial schema: the tables of service B and shopkit's (outbox, inbox, idempotency).

Revision ID: 0001
Revises:
Create Date: 2026-11-29 12:06:28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shopkit.migrations import create_shared_tables_0001, drop_shared_tables_0001

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tables."""
    create_shared_tables_0001()
    op.create_table(
        "cart_items",
        sa.Column("item_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("item_id"),
    )
    op.create_index("ix_cart_items_user", "cart_items", ["user_id", "item_id"])
    op.create_table(
        "orders",
        sa.Column("order_id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("reservation_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
        sa.UniqueConstraint("reservation_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_orders_user", "orders", ["user_id", "created_at"])
    op.create_table(
        "order_items",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_order_items_order_id", "order_items", ["order_id"])
    op.create_table(
        "checkouts",
        sa.Column("reservation_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("item_ids", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("reservation_id"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_index("ix_checkouts_started_at", "checkouts", ["started_at"])
    op.create_table(
        "stock_releases",
        sa.Column("reservation_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("reservation_id"),
    )


def downgrade() -> None:
    """Drop the tables."""
    for table in ("stock_releases", "checkouts", "order_items", "orders", "cart_items"):
        op.drop_table(table)
    drop_shared_tables_0001()
