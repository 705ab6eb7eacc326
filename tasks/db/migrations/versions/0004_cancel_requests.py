"""cancel_requests: SOP 3's requests, one open per order

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "cancel_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("order_name", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("amount", sa.String(), nullable=True),
        sa.Column("open_key", sa.BigInteger(), nullable=True, unique=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("joined_to", sa.Integer(), nullable=True),
        sa.Column("requested_at", ts, nullable=False),
        sa.Column("closed_at", ts, nullable=True),
        sa.Column("refunded", sa.String(), nullable=True),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.Column("policy_version", sa.String(), nullable=False),
    )
    op.create_index("ix_cancel_requests_order_id", "cancel_requests", ["order_id"])
    op.create_index("ix_cancel_requests_status", "cancel_requests", ["status"])
    op.create_index("ix_cancel_requests_joined_to", "cancel_requests", ["joined_to"])


def downgrade() -> None:
    op.drop_index("ix_cancel_requests_joined_to", "cancel_requests")
    op.drop_index("ix_cancel_requests_status", "cancel_requests")
    op.drop_index("ix_cancel_requests_order_id", "cancel_requests")
    op.drop_table("cancel_requests")
