"""variable_monitors: the 2.0.1 variable monitors the CSMS set on stations

Revision ID: d6a1c8f3e925
Revises: b5d2f7a3c19e
Create Date: 2026-12-04 04:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d6a1c8f3e925"
down_revision: str | None = "b5d2f7a3c19e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "variable_monitors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column(
            "station_id",
            sa.String(48),
            sa.ForeignKey("stations.id", ondelete="CASCADE", name="fk_variable_monitors_station_id_stations"),
            nullable=False,
        ),
        sa.Column("monitor_id", sa.Integer()),
        sa.Column("component", sa.String(50), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("variable", sa.String(50), nullable=False),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("transaction", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_variable_monitors_station", "variable_monitors", ["station_id"])


def downgrade() -> None:
    op.drop_index("ix_variable_monitors_station", "variable_monitors")
    op.drop_table("variable_monitors")
