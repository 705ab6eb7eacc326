"""address_reviews: SOP 4's exceptions, the customer's correction window and its outcome

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "address_reviews",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("order_name", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("address", sa.JSON(), nullable=False),
        sa.Column("suggestions", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("opened_at", ts, nullable=False),
        sa.Column("deadline", ts, nullable=False),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("corrected_address", sa.JSON(), nullable=True),
        sa.Column("corrected_at", ts, nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("resolved_at", ts, nullable=True),
        sa.Column("policy_version", sa.String(), nullable=False),
    )
    op.create_index("ix_address_reviews_order_id", "address_reviews", ["order_id"])
    op.create_index("ix_address_reviews_status", "address_reviews", ["status"])


def downgrade() -> None:
    op.drop_index("ix_address_reviews_status", "address_reviews")
    op.drop_index("ix_address_reviews_order_id", "address_reviews")
    op.drop_table("address_reviews")
