"""Versioned answers and hoax clarifications with two-person approval.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "content_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("proposed_by", sa.String(64), nullable=False),
        sa.Column("proposed_at", TZ, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("based_on", sa.Integer, nullable=True),
        sa.Column("restores", sa.Integer, nullable=True),
        sa.UniqueConstraint("kind", "key", "version", name="uq_content_versions_version"),
    )
    op.create_index("ix_content_versions_status", "content_versions",
                    ["status", "kind", "key"])
    op.create_table(
        "content_audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_content_audit_key", "content_audit", ["kind", "key", "id"])


def downgrade() -> None:
    op.drop_index("ix_content_audit_key", "content_audit")
    op.drop_table("content_audit")
    op.drop_index("ix_content_versions_status", "content_versions")
    op.drop_table("content_versions")
