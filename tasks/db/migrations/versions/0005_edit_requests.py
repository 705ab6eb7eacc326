"""edit_requests (SOP 2) and order_locks (edits on one order run serially)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "edit_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("order_name", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("edit_class", sa.String(), nullable=True),
        sa.Column("rule", sa.String(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("requested_at", ts, nullable=False),
        sa.Column("closed_at", ts, nullable=True),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.Column("policy_version", sa.String(), nullable=False),
    )
    op.create_index("ix_edit_requests_order_id", "edit_requests", ["order_id"])
    op.create_index("ix_edit_requests_status", "edit_requests", ["status"])
    op.create_table(
        "order_locks",
        sa.Column("order_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("expires_at", ts, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("order_locks")
    op.drop_index("ix_edit_requests_status", "edit_requests")
    op.drop_index("ix_edit_requests_order_id", "edit_requests")
    op.drop_table("edit_requests")
