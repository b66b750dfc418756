"""Hoax matches: the hoax id on each decided message, and a per-day count per hoax.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound") as batch:
        batch.add_column(sa.Column("hoax_id", sa.String(64), nullable=True))
    op.create_table(
        "hoax_daily",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("hoax_id", sa.String(64), primary_key=True),
        sa.Column("matches", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hoax_daily")
    with op.batch_alter_table("inbound") as batch:
        batch.drop_column("hoax_id")
