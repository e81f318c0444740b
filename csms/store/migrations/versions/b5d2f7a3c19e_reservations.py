"""reservations: the reservations the CSMS makes (ReserveNow), their id chosen here, and what became of them

Revision ID: b5d2f7a3c19e
Revises: a7d3e9c1b452
Create Date: 2026-12-04 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b5d2f7a3c19e"
down_revision: str | None = "a7d3e9c1b452"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        sa.Column("connector_type", sa.String(20), nullable=True),
        sa.Column("id_token", sa.String(36), nullable=False),
        sa.Column("id_token_type", sa.String(20), nullable=False),
        sa.Column("group_id", sa.String(36), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_reservations_station_id_stations"), ondelete="CASCADE"
        ),
    )
    op.create_index("ix_reservations_station", "reservations", ["station_id", "created_at"])
    op.create_index("ix_reservations_status_expires", "reservations", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_reservations_status_expires", table_name="reservations")
    op.drop_index("ix_reservations_station", table_name="reservations")
    op.drop_table("reservations")
