"""parcels.shipped_at: when the carrier first had the parcel (the promised delivery date counts from it)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("parcels") as b:
        b.add_column(sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True))
        b.create_index("ix_parcels_stage", ["stage"])


def downgrade() -> None:
    with op.batch_alter_table("parcels") as b:
        b.drop_index("ix_parcels_stage")
        b.drop_column("shipped_at")
