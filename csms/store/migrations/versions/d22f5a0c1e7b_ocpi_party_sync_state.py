"""OCPI party sync state: what each party was last sent of locations and tariffs, when its tokens were pulled

Revision ID: d22f5a0c1e7b
Revises: c41d7e9a2b63
Create Date: 2026-12-04 18:16:09.422300
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.store.models


revision: str = "d22f5a0c1e7b"
down_revision: str | None = "c41d7e9a2b63"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ocpi_parties", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pushed", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("tokens_pulled_at", csms.store.models.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ocpi_parties", schema=None) as batch_op:
        batch_op.drop_column("tokens_pulled_at")
        batch_op.drop_column("pushed")
