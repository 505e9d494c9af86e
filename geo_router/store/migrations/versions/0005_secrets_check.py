"""The store's id and the check values of the secrets that encrypt it (one row).

Revision ID: 0005_secrets_check
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from geo_router.store.schema import JSONType, UTCDateTime

revision = "0005_secrets_check"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("store_id", sa.String(36), nullable=False),
        sa.Column("pepper_check", sa.String(64), nullable=False),
        sa.Column("key_checks", JSONType, nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_meta"),
        sa.CheckConstraint("id = 1", name="ck_store_meta_single_row"),
    )


def downgrade() -> None:
    op.drop_table("store_meta")
