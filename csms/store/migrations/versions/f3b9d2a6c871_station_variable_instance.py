"""station_variables.instance: a 2.0.1 variable's instance (DeviceDataCtrlr.ItemsPerMessage has one per message
type), part of what names a variable

Revision ID: f3b9d2a6c871
Revises: b2d6f1a9c3e4
Create Date: 2026-12-04 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f3b9d2a6c871"
down_revision: str | None = "b2d6f1a9c3e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ["station_id", "component", "evse_id", "variable", "attribute"]


def upgrade() -> None:
    with op.batch_alter_table("station_variables") as batch:
        batch.add_column(sa.Column("instance", sa.String(50), nullable=False, server_default=""))
        batch.drop_constraint("uq_station_variables_station_id", type_="unique")
        batch.create_unique_constraint(
            "uq_station_variables_station_id", ["station_id", "component", "evse_id", "variable", "instance", "attribute"]
        )


def downgrade() -> None:
    with op.batch_alter_table("station_variables") as batch:
        batch.drop_constraint("uq_station_variables_station_id", type_="unique")
        batch.create_unique_constraint("uq_station_variables_station_id", _OLD)
        batch.drop_column("instance")
