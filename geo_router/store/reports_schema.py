"""Core tables of report intake: reports, their zones, status history, idempotency keys.

Migrations ``0002`` and ``0003`` create exactly these tables (plus, on PostgreSQL with PostGIS, a
generated ``reports.geom`` point column that is deliberately not declared here: it may be
absent, and queries reach it through :data:`GEOM_COLUMN` only when it exists).
"""

from __future__ import annotations

import sqlalchemy as sa

from geo_router.store.schema import JSONType, UTCDateTime, metadata

__all__ = [
    "CHANNELS",
    "GEOM_COLUMN",
    "LOCATION_SOURCES",
    "RESOLUTIONS",
    "STATUSES",
    "idempotency_keys",
    "metadata",
    "report_updates",
    "report_zones",
    "reports",
]

#: Intake channels; "import" marks historic reports loaded in bulk.
CHANNELS: tuple[str, ...] = ("call", "sms", "social", "web", "app", "import")
STATUSES: tuple[str, ...] = ("open", "acknowledged", "in_progress", "closed")
RESOLUTIONS: tuple[str, ...] = ("resolved", "duplicate", "false_report", "prank")
LOCATION_SOURCES: tuple[str, ...] = ("given", "registered_caller", "geocoded", "imported")
#: Name of the optional PostGIS point column on ``reports``.
GEOM_COLUMN = "geom"


def _in(column: str, values: tuple[str, ...]) -> str:
    """A CHECK expression ``column IN (...)``."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


# The store's MetaData (shared naming convention). api_key_id is a plain string, no foreign
# key: a report outlives the key that filed it.

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.String(40), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("category", sa.String(120), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("resolution", sa.String(16), nullable=True),
    # Nullable only for imported rows whose coordinates were unusable (flagged).
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("location_source", sa.String(24), nullable=False),
    sa.Column("location_confidence", sa.Float, nullable=True),
    sa.Column("reporter_phone_hash", sa.String(128), nullable=True),
    sa.Column("reporter_phone_enc", sa.Text, nullable=True),
    sa.Column("media_url", sa.Text, nullable=True),
    sa.Column("decision", JSONType, nullable=False),
    sa.Column("flags", JSONType, nullable=False),
    sa.Column("api_key_id", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_reports"),
    sa.CheckConstraint(_in("channel", CHANNELS), name="channel"),
    sa.CheckConstraint(_in("status", STATUSES), name="status"),
    sa.CheckConstraint(
        f"resolution IS NULL OR {_in('resolution', RESOLUTIONS)}", name="resolution"
    ),
    sa.CheckConstraint(_in("location_source", LOCATION_SOURCES), name="location_source"),
    sa.Index("ix_reports_created_at", "created_at"),
    sa.Index("ix_reports_channel_created_at", "channel", "created_at"),
    sa.Index("ix_reports_category", "category"),
    sa.Index("ix_reports_status", "status"),
    sa.Index("ix_reports_phone_hash_created_at", "reporter_phone_hash", "created_at"),
    sa.Index("ix_reports_lon_lat", "lon", "lat"),
)

report_zones = sa.Table(
    "report_zones",
    metadata,
    sa.Column(
        "report_id",
        sa.String(40),
        sa.ForeignKey("reports.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("layer", sa.String(64), nullable=False),
    sa.Column("zone_id", sa.String(128), nullable=False),
    sa.PrimaryKeyConstraint("report_id", "layer", name="pk_report_zones"),
    sa.Index("ix_report_zones_layer_zone", "layer", "zone_id"),
)

report_updates = sa.Table(
    "report_updates",
    metadata,
    sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
    sa.Column(
        "report_id",
        sa.String(40),
        sa.ForeignKey("reports.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=True),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("resolution", sa.String(16), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_report_updates"),
    sa.Index("ix_report_updates_report_id_at", "report_id", "at"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
    sa.Column("key", sa.String(255), nullable=False),
    # "" in open mode (no keys): NULLs would never collide in a UNIQUE constraint.
    sa.Column("api_key_id", sa.String(64), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column(
        "report_id",
        sa.String(40),
        sa.ForeignKey("reports.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("response", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_idempotency_keys"),
    sa.UniqueConstraint("key", "api_key_id", name="uq_idempotency_keys_key_api_key"),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),  # the purge of expired keys
)
