"""Admin replies go out through the outbox: a row may have no inbound message, and
records its author and ticket.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("inbound_id", existing_type=sa.Integer, nullable=True)
        batch.add_column(sa.Column("author", sa.String(64), nullable=True))
        batch.add_column(sa.Column("ticket_id", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("ticket_id")
        batch.drop_column("author")
        batch.alter_column("inbound_id", existing_type=sa.Integer, nullable=False)
