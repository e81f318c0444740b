"""ev_charging_negotiations: ISO 15118 smart charging per EVSE (the EV's needs, the TxProfile, the EV's schedule)

Revision ID: b2d7e915a4c3
Revises: c4e8a1f0b7d2
Create Date: 2026-12-04 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b2d7e915a4c3"
down_revision: str | None = "c4e8a1f0b7d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "ev_charging_negotiations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(36), nullable=True),
        sa.Column("needs", sa.JSON(), nullable=True),
        sa.Column("needs_at", when, nullable=True),
        sa.Column("profile", sa.JSON(), nullable=True),
        sa.Column("profile_at", when, nullable=True),
        sa.Column("ev_schedule", sa.JSON(), nullable=True),
        sa.Column("ev_schedule_at", when, nullable=True),
        sa.Column("ev_schedule_status", sa.String(16), nullable=True),
        sa.Column("ev_schedule_reason", sa.String(300), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name="fk_ev_charging_negotiations_station_id_stations", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ev_charging_negotiations"),
        sa.UniqueConstraint("station_id", "evse_id", name="uq_ev_charging_negotiations_station_id"),
    )


def downgrade() -> None:
    op.drop_table("ev_charging_negotiations")
