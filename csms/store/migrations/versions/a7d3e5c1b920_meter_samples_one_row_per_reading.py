"""meter_samples: one row per reading (a replayed MeterValues stores nothing new)

Duplicates stored before are removed (the first row of each reading stays), then the unique index
ux_meter_samples_reading replaces ix_meter_samples_station_time (it leads with the same two columns).

Revision ID: a7d3e5c1b920
Revises: 1595859c4884
Create Date: 2026-12-03 19:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7d3e5c1b920"
down_revision: str | None = "1595859c4884"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_READING = "station_id, timestamp, evse_id, measurand, coalesce(phase, ''), coalesce(location, ''), coalesce(context, '')"


def upgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM meter_samples WHERE id NOT IN "
            f"(SELECT first_id FROM (SELECT min(id) AS first_id FROM meter_samples GROUP BY {_READING}) AS firsts)"
        )
    )
    op.drop_index("ix_meter_samples_station_time", table_name="meter_samples")
    op.execute(sa.text(f"CREATE UNIQUE INDEX ux_meter_samples_reading ON meter_samples ({_READING})"))


def downgrade() -> None:
    op.drop_index("ux_meter_samples_reading", table_name="meter_samples")
    op.create_index("ix_meter_samples_station_time", "meter_samples", ["station_id", "timestamp"], unique=False)
