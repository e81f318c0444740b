"""security_events: what stations report (SecurityEventNotification) and what the CSMS detects (refused
handshakes, bad certificates, rejected CSRs), stored and searchable

Revision ID: c9f4a2d6e813
Revises: 5b7e2c41d9a3
Create Date: 2026-12-03 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c9f4a2d6e813"
down_revision: str | None = "5b7e2c41d9a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "security_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("station_id", sa.String(48), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_events")),
    )
    op.create_index("ix_security_events_at", "security_events", ["at"])
    op.create_index("ix_security_events_station_at", "security_events", ["station_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_security_events_station_at", table_name="security_events")
    op.drop_index("ix_security_events_at", table_name="security_events")
    op.drop_table("security_events")
