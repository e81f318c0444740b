"""meter_samples: the reading index leads with the time

ux_meter_samples_reading keeps its columns (one row per reading, a replay stores nothing new) but leads with
the timestamp instead of the station. Readings arrive in time order from every station at once, so new
entries land at the index's right edge: a group commit of many stations' meter values touches a few of its
pages instead of one per station (each written to the WAL at the commit). No query read meter_samples by
station and time; they read by transaction (ix_meter_samples_tx).

Revision ID: 27cb50cf6349
Revises: e04568a24c2e
Create Date: 2026-12-05 10:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "27cb50cf6349"
down_revision: str | None = "e04568a24c2e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SAME = "evse_id, measurand, coalesce(phase, ''), coalesce(location, ''), coalesce(context, '')"


def _reading_index(leading: str) -> None:
    op.drop_index("ux_meter_samples_reading", table_name="meter_samples")
    op.execute(sa.text(f"CREATE UNIQUE INDEX ux_meter_samples_reading ON meter_samples ({leading}, {_SAME})"))


def upgrade() -> None:
    _reading_index("timestamp, station_id")


def downgrade() -> None:
    _reading_index("station_id, timestamp")
