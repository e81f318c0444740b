"""contract_roots: the MO/V2G roots the CSMS trusts for ISO 15118 contract certificates (Plug & Charge)

Revision ID: c4e8a1f0b7d2
Revises: d81f3a6c2e57
Create Date: 2026-12-03 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4e8a1f0b7d2"
down_revision: str | None = "d81f3a6c2e57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contract_roots",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("contract_roots")
