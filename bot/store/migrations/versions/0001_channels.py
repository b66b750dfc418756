"""Channel tables: conversations, inbound messages, outbox, delivery reports.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("chat_id", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_inbound_at", TZ, nullable=True),
        sa.UniqueConstraint("channel", "chat_id", name="uq_conversations_channel_chat"),
    )
    op.create_table(
        "inbound",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("platform_id", sa.String(128), nullable=False),
        sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id"),
                  nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(32), nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("reply_to", sa.String(64), nullable=True),
        sa.Column("callback_id", sa.String(128), nullable=True),
        sa.Column("is_group", sa.Boolean, nullable=False),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_at", TZ, nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("route", sa.String(16), nullable=True),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("category", sa.String(32), nullable=True),
        sa.UniqueConstraint("channel", "platform_id", name="uq_inbound_channel_platform_id"),
    )
    op.create_index("ix_inbound_conversation_status", "inbound",
                    ["conversation_id", "status", "id"])
    op.create_index("ix_inbound_status_received", "inbound", ["status", "received_at"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("inbound_id", sa.Integer, sa.ForeignKey("inbound.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id"),
                  nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("platform_message_id", sa.String(128), nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("delivery_status", sa.String(16), nullable=True),
        sa.Column("delivery_at", TZ, nullable=True),
        sa.UniqueConstraint("inbound_id", "seq", name="uq_outbox_inbound_seq"),
    )
    op.create_index("ix_outbox_conversation_status", "outbox",
                    ["conversation_id", "status", "id"])
    op.create_index("ix_outbox_platform_message_id", "outbox", ["platform_message_id"])
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("platform_message_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", TZ, nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_index("ix_delivery_events_platform_message_id", "delivery_events",
                    ["platform_message_id"])


def downgrade() -> None:
    op.drop_table("delivery_events")
    op.drop_table("outbox")
    op.drop_table("inbound")
    op.drop_table("conversations")
