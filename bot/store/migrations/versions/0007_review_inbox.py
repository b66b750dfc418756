"""The trainers' review inbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("inbound_id", sa.Integer, nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("predicted_intent", sa.String(64), nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("suggested_intent", sa.String(64), nullable=True),
        sa.Column("cluster_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
    )
    op.create_index("ix_review_items_status_cluster", "review_items", ["status", "cluster_key"])
    op.create_index("ix_review_items_cluster_key", "review_items", ["cluster_key"])
    op.create_index("ix_review_items_created_at", "review_items", ["created_at"])
    op.create_index("ix_review_items_inbound_id", "review_items", ["inbound_id"])


def downgrade() -> None:
    op.drop_index("ix_review_items_inbound_id", "review_items")
    op.drop_index("ix_review_items_created_at", "review_items")
    op.drop_index("ix_review_items_cluster_key", "review_items")
    op.drop_index("ix_review_items_status_cluster", "review_items")
    op.drop_table("review_items")
