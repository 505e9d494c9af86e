"""Versions of the city's zone layers (``layer_versions``) and their state history.

Revision ID: 0008_layer_versions
Revises: 0007_audit_log
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from geo_router.store.schema import JSONType, UTCDateTime

revision = "0008_layer_versions"
down_revision = "0007_audit_log"
branch_labels = None
depends_on = None

# Literal copy: a revision stays what it was when it was written.
_STATES = ("validating", "staged", "failed", "active", "retired")


def upgrade() -> None:
    op.create_table(
        "layer_versions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("layer", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("source_name", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("effective_at", UTCDateTime(), nullable=True),
        sa.Column("feature_count", sa.Integer(), nullable=True),
        sa.Column("geojson", sa.Text(), nullable=True),
        sa.Column("report", JSONType, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_layer_versions"),
        sa.UniqueConstraint("layer", "number", name="uq_layer_versions_layer_number"),
        sa.CheckConstraint(
            f"state IN ({', '.join(repr(s) for s in _STATES)})", name="ck_layer_versions_state"
        ),
    )
    op.create_index("ix_layer_versions_layer_state", "layer_versions", ["layer", "state"])
    op.create_table(
        "layer_version_events",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("version_id", sa.String(40), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_layer_version_events"),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["layer_versions.id"],
            name="fk_layer_version_events_version_id_layer_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_layer_version_events_version_id_at", "layer_version_events", ["version_id", "at"]
    )


def downgrade() -> None:
    op.drop_index("ix_layer_version_events_version_id_at", table_name="layer_version_events")
    op.drop_table("layer_version_events")
    op.drop_index("ix_layer_versions_layer_state", table_name="layer_versions")
    op.drop_table("layer_versions")
