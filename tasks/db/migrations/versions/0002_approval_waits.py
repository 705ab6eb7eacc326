"""approvals: refusals count, order context, address verdict and decided address

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("context", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("address_verdict", sa.String(), nullable=True))
        batch.add_column(sa.Column("decided_address", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        for c in ("decided_address", "address_verdict", "context", "refusals"):
            batch.drop_column(c)
