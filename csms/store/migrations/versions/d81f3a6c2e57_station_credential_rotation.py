"""stations: the password a rotation replaced (until the station uses the new one) and a profile upgrade in flight

Revision ID: d81f3a6c2e57
Revises: e3c8a1f05b27
Create Date: 2026-12-03 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.store.models

revision: str = "d81f3a6c2e57"
down_revision: str | None = "e3c8a1f05b27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stations") as batch_op:
        batch_op.add_column(sa.Column("previous_password_hash", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("previous_password_expires_at", csms.store.models.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pending_security_profile", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stations") as batch_op:
        batch_op.drop_column("pending_security_profile")
        batch_op.drop_column("previous_password_expires_at")
        batch_op.drop_column("previous_password_hash")
