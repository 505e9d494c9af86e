"""API keys and subscribers.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from geo_router.store.schema import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Values inlined (not imported) so this revision stays what it was when later code changes.
_ROLES = "'intake', 'planner', 'analyst', 'admin'"
_CHANNELS = "'call', 'sms', 'social', 'web', 'app'"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("prefix", sa.String(8), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.CheckConstraint(f"role IN ({_ROLES})", name="ck_api_keys_role"),
        sa.CheckConstraint(
            f"channel IS NULL OR channel IN ({_CHANNELS})", name="ck_api_keys_channel"
        ),
    )
    op.create_index("ix_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])

    op.create_table(
        "subscribers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("phone_hash", sa.String(64), nullable=False),
        sa.Column("phone_enc", sa.Text(), nullable=False),
        sa.Column("name_enc", sa.Text(), nullable=True),
        sa.Column("address_enc", sa.Text(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("location_source", sa.String(16), nullable=True),
        sa.Column("geocode_confidence", sa.Float(), nullable=True),
        sa.Column("zones", JSONType, nullable=False),
        sa.Column("responders", JSONType, nullable=False),
        sa.Column("verification_status", sa.String(16), nullable=False),
        sa.Column("verification_method", sa.String(64), nullable=True),
        sa.Column("consent_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscribers"),
        sa.CheckConstraint(
            "location_source IS NULL OR location_source IN ('given', 'geocoded')",
            name="ck_subscribers_location_source",
        ),
        sa.CheckConstraint(
            "verification_status IN ('unverified', 'verified', 'rejected')",
            name="ck_subscribers_verification",
        ),
    )
    op.create_index("ix_subscribers_phone_hash", "subscribers", ["phone_hash"], unique=True)
    op.create_index("ix_subscribers_created_at", "subscribers", ["created_at"])


def downgrade() -> None:
    op.drop_table("subscribers")
    op.drop_table("api_keys")
