"""Telegram admin-group posts per ticket (post-once guard that survives restarts).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_posts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("chat_id", sa.String(32), nullable=False),
        sa.Column("message_id", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("ticket_id", "chat_id", "kind", "priority",
                            name="uq_ticket_posts_post"),
    )
    op.create_index("ix_ticket_posts_message", "ticket_posts", ["chat_id", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_posts_message", "ticket_posts")
    op.drop_table("ticket_posts")
