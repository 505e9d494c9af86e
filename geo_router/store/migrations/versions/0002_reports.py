"""Report intake: reports, report_zones, report_updates, idempotency_keys.

On PostgreSQL with PostGIS available, ``reports.geom`` is a stored generated
``geometry(Point, 4326)`` column (from lon/lat) with a GiST index; without PostGIS (or without
the right to create the extension) it is skipped and bbox filters fall back to lon/lat.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from geo_router.store.schema import JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


# Values inlined (not imported) so this revision stays what it was when later code changes.
_CHANNELS = "'call', 'sms', 'social', 'web', 'app', 'import'"
_STATUSES = "'open', 'acknowledged', 'in_progress', 'closed'"
_RESOLUTIONS = "'resolved', 'duplicate', 'false_report', 'prank'"
_LOCATION_SOURCES = "'given', 'registered_caller', 'geocoded', 'imported'"


def _report_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["report_id"], ["reports.id"], name=f"fk_{table}_report_id_reports", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("category", sa.String(120), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("location_source", sa.String(24), nullable=False),
        sa.Column("location_confidence", sa.Float(), nullable=True),
        sa.Column("reporter_phone_hash", sa.String(128), nullable=True),
        sa.Column("reporter_phone_enc", sa.Text(), nullable=True),
        sa.Column("media_url", sa.Text(), nullable=True),
        sa.Column("decision", JSONType, nullable=False),
        sa.Column("flags", JSONType, nullable=False),
        sa.Column("api_key_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
        sa.CheckConstraint(f"channel IN ({_CHANNELS})", name="ck_reports_channel"),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name="ck_reports_status"),
        sa.CheckConstraint(
            f"resolution IS NULL OR resolution IN ({_RESOLUTIONS})", name="ck_reports_resolution"
        ),
        sa.CheckConstraint(
            f"location_source IN ({_LOCATION_SOURCES})", name="ck_reports_location_source"
        ),
    )
    op.create_index("ix_reports_created_at", "reports", ["created_at"])
    op.create_index("ix_reports_channel_created_at", "reports", ["channel", "created_at"])
    op.create_index("ix_reports_category", "reports", ["category"])
    op.create_index("ix_reports_status", "reports", ["status"])
    op.create_index(
        "ix_reports_phone_hash_created_at", "reports", ["reporter_phone_hash", "created_at"]
    )
    op.create_index("ix_reports_lon_lat", "reports", ["lon", "lat"])

    op.create_table(
        "report_zones",
        sa.Column("report_id", sa.String(40), nullable=False),
        sa.Column("layer", sa.String(64), nullable=False),
        sa.Column("zone_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("report_id", "layer", name="pk_report_zones"),
        _report_fk("report_zones"),
    )
    op.create_index("ix_report_zones_layer_zone", "report_zones", ["layer", "zone_id"])

    op.create_table(
        "report_updates",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("report_id", sa.String(40), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_report_updates"),
        _report_fk("report_updates"),
    )
    op.create_index("ix_report_updates_report_id_at", "report_updates", ["report_id", "at"])

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("api_key_id", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("report_id", sa.String(40), nullable=False),
        sa.Column("response", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_idempotency_keys"),
        sa.UniqueConstraint("key", "api_key_id", name="uq_idempotency_keys_key_api_key"),
        _report_fk("idempotency_keys"),
    )
    _add_postgis_geom()


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("report_updates")
    op.drop_table("report_zones")
    op.drop_table("reports")


def _add_postgis_geom() -> None:
    """Add the generated point column + GiST index, only on PostgreSQL with PostGIS."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _postgis_ready(bind):
        return
    op.execute(
        "ALTER TABLE reports ADD COLUMN geom geometry(Point, 4326) "
        "GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED"
    )
    op.execute("CREATE INDEX ix_reports_geom ON reports USING gist (geom)")


def _postgis_ready(bind: sa.Connection) -> bool:
    """True when PostGIS is installed, or could be created here (rights permitting)."""
    installed = "SELECT 1 FROM pg_extension WHERE extname = 'postgis'"
    if bind.execute(sa.text(installed)).first():
        return True
    available = "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"
    if not bind.execute(sa.text(available)).first():
        return False
    try:
        # A savepoint: a refused CREATE EXTENSION must not abort the migration's transaction.
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except sa.exc.DBAPIError:
        return False
    return True
