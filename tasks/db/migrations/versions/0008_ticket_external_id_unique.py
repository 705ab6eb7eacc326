"""tickets: one row per (channel, external id): a mail provider retrying the same reply, even
concurrently, opens one ticket

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as b:
        b.create_unique_constraint("uq_tickets_channel_external_id", ["channel", "external_id"])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as b:
        b.drop_constraint("uq_tickets_channel_external_id", type_="unique")
