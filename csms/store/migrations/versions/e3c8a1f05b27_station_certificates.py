"""issued_certificates (what the CSMS's CA signed for stations) and installed_certificates (what stations
reported installed)

Revision ID: e3c8a1f05b27
Revises: c4f1a8e2b6d7
Create Date: 2026-12-03 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "e3c8a1f05b27"
down_revision: str | None = "c4f1a8e2b6d7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issued_certificates",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("certificate_type", sa.String(32), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_certificates")),
        sa.UniqueConstraint("serial", name=op.f("uq_issued_certificates_serial")),
    )
    op.create_index("ix_issued_certificates_station", "issued_certificates", ["station_id", "not_after"])
    op.create_table(
        "installed_certificates",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("certificate_type", sa.String(32), nullable=False),
        sa.Column("hash_algorithm", sa.String(8), nullable=False),
        sa.Column("issuer_name_hash", sa.String(128), nullable=False),
        sa.Column("issuer_key_hash", sa.String(128), nullable=False),
        sa.Column("serial_number", sa.String(40), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installed_certificates")),
    )
    op.create_index("ix_installed_certificates_station", "installed_certificates", ["station_id"])


def downgrade() -> None:
    op.drop_index("ix_installed_certificates_station", table_name="installed_certificates")
    op.drop_table("installed_certificates")
    op.drop_index("ix_issued_certificates_station", table_name="issued_certificates")
    op.drop_table("issued_certificates")
