"""SOP 1: parcels (each fulfillment's latest carrier state), order_comms (payment pending, delivery,
follow-up due), the Message-ID of each message sent (replies find their order), and the message a
ticket replied to

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "parcels",
        sa.Column("fulfillment_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("tracking_number", sa.String(), nullable=True),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("updated_at", ts, nullable=False),
    )
    op.create_index("ix_parcels_order_id", "parcels", ["order_id"])
    op.create_table(
        "order_comms",
        sa.Column("order_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("payment_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("delivered_at", ts, nullable=True),
        sa.Column("followup_due_at", ts, nullable=True),
        sa.Column("followup_status", sa.String(), nullable=True),  # due | sent | suppressed
        sa.Column("followup_reason", sa.String(), nullable=True),
    )
    op.create_index("ix_order_comms_followup_due_at", "order_comms", ["followup_due_at"])
    with op.batch_alter_table("messages") as b:
        b.add_column(sa.Column("message_id", sa.String(), nullable=True))
        b.create_index("ix_messages_message_id", ["message_id"])
    with op.batch_alter_table("tickets") as b:
        b.add_column(sa.Column("reply_to_template", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as b:
        b.drop_column("reply_to_template")
    with op.batch_alter_table("messages") as b:
        b.drop_index("ix_messages_message_id")
        b.drop_column("message_id")
    op.drop_index("ix_order_comms_followup_due_at", "order_comms")
    op.drop_table("order_comms")
    op.drop_index("ix_parcels_order_id", "parcels")
    op.drop_table("parcels")
