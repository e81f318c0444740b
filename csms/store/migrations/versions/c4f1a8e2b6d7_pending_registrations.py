"""pending_registrations: unknown stations that connected while auto-registration is on, waiting for an
operator's approval (no password of theirs is kept)

Revision ID: c4f1a8e2b6d7
Revises: c9f4a2d6e813
Create Date: 2026-12-03 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4f1a8e2b6d7"
down_revision: str | None = "c9f4a2d6e813"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_registrations",
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("ocpp_version", sa.String(8), nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_pending_registrations")),
    )
    op.create_index(op.f("ix_pending_registrations_source"), "pending_registrations", ["source"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_registrations_source"), table_name="pending_registrations")
    op.drop_table("pending_registrations")
