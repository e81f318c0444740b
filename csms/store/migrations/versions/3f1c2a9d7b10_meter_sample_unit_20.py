"""meter_samples.unit holds 20 characters (2.0.1 UnitOfMeasureType.unit is string[0..20])

Revision ID: 3f1c2a9d7b10
Revises: 8028e1b01dbc
Create Date: 2026-11-24 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '3f1c2a9d7b10'
down_revision: str | None = '8028e1b01dbc'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('meter_samples') as batch_op:
        batch_op.alter_column('unit', existing_type=sa.String(length=16), type_=sa.String(length=20))


def downgrade() -> None:
    with op.batch_alter_table('meter_samples') as batch_op:
        batch_op.alter_column('unit', existing_type=sa.String(length=20), type_=sa.String(length=16))
