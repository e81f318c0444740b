"""stations.security_profile: how a station must connect (1 Basic auth, 2 TLS + Basic auth, 3 mutual TLS)

Revision ID: 5b7e2c41d9a3
Revises: a7d3e5c1b920
Create Date: 2026-12-03 19:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e2c41d9a3"
down_revision: str | None = "a7d3e5c1b920"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stations") as batch_op:
        batch_op.add_column(sa.Column("security_profile", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("stations") as batch_op:
        batch_op.drop_column("security_profile")
