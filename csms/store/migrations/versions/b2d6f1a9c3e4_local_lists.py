"""local_lists: each station's local authorization list (version, entries sent, limits it reported)

Revision ID: b2d6f1a9c3e4
Revises: d6a1c8f3e925
Create Date: 2026-12-04 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.store.models

revision: str = "b2d6f1a9c3e4"
down_revision: str | None = "d6a1c8f3e925"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = csms.store.models.UtcDateTime(timezone=True)
    op.create_table(
        "local_lists",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("token_group", sa.String(length=36), nullable=True),
        sa.Column("needs_full", sa.Boolean(), nullable=False),
        sa.Column("out_of_step_since", when, nullable=True),
        sa.Column("reported_version", sa.Integer(), nullable=True),
        sa.Column("last_status", sa.String(length=200), nullable=True),
        sa.Column("synced_at", when, nullable=True),
        sa.Column("max_entries", sa.Integer(), nullable=True),
        sa.Column("items_per_message", sa.Integer(), nullable=True),
        sa.Column("bytes_per_message", sa.Integer(), nullable=True),
        sa.Column("capabilities_read_at", when, nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_local_lists_station_id_stations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_local_lists")),
    )
    op.create_table(
        "local_list_entries",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("id_token", sa.String(length=36), nullable=False),
        sa.Column("token_type", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expiry", when, nullable=True),
        sa.Column("group_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["local_lists.station_id"],
            name=op.f("fk_local_list_entries_station_id_local_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("station_id", "id_token", name=op.f("pk_local_list_entries")),
    )


def downgrade() -> None:
    op.drop_table("local_list_entries")
    op.drop_table("local_lists")
