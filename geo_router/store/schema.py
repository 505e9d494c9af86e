"""Tables of the store (SQLAlchemy Core), every vocabulary they use, and shared column types.

Each vocabulary (roles, channels, statuses, resolutions, location sources, verification
states) is defined here once, as a ``Literal`` type for the type checker and pydantic and as
the tuple of its values for CHECK constraints and messages; code elsewhere imports them from
here. The migrations in ``migrations/versions`` create exactly these tables (a test compares
the two) and keep their own literal copies: a revision stays what it was when it was written.
Reports may also have a generated PostGIS ``reports.geom`` point column that is deliberately
not declared here: it may be absent, and queries reach it through :data:`GEOM_COLUMN` only
when it exists.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

Role = Literal["intake", "planner", "analyst", "admin"]
#: Key roles, least to most powerful.
ROLES: tuple[Role, ...] = get_args(Role)

LiveChannel = Literal["call", "sms", "social", "web", "app"]
#: Channels reports arrive on as they happen; an intake key may be bound to one of them.
CHANNELS: tuple[LiveChannel, ...] = get_args(LiveChannel)
ReportChannel = Literal[LiveChannel, "import"]
#: Channels a stored report may carry: the live ones and "import" (history loaded in bulk).
REPORT_CHANNELS: tuple[ReportChannel, ...] = get_args(ReportChannel)
#: The channel of bulk-imported historic reports.
IMPORT_CHANNEL: ReportChannel = "import"

ReportStatus = Literal["open", "acknowledged", "in_progress", "closed"]
#: A report's lifecycle, in order.
STATUSES: tuple[ReportStatus, ...] = get_args(ReportStatus)
ReportState = Literal[ReportStatus, "pending_store"]
#: The status a report is answered with: its lifecycle status, or ``pending_store`` for an
#: emergency taken while the database was unavailable and kept in the local journal until it
#: is replayed into the store (then it is stored ``open``). Never stored, so not a column value.
REPORT_STATES: tuple[ReportState, ...] = get_args(ReportState)
PENDING_STORE: ReportState = "pending_store"
Resolution = Literal["resolved", "duplicate", "false_report", "prank"]
#: How a closed report ended.
RESOLUTIONS: tuple[Resolution, ...] = get_args(Resolution)
#: Resolutions that count against the reporting number.
FALSE_RESOLUTIONS: tuple[Resolution, ...] = ("false_report", "prank")

SubscriberLocationSource = Literal["given", "geocoded"]
#: How a subscriber's home location was obtained.
SUBSCRIBER_LOCATION_SOURCES: tuple[SubscriberLocationSource, ...] = get_args(
    SubscriberLocationSource
)
ReportLocationSource = Literal[SubscriberLocationSource, "registered_caller", "imported"]
#: How a report's location was obtained.
REPORT_LOCATION_SOURCES: tuple[ReportLocationSource, ...] = get_args(ReportLocationSource)

VerificationStatus = Literal["unverified", "verified", "rejected"]
#: Verification states of a subscriber.
VERIFICATION_STATUSES: tuple[VerificationStatus, ...] = get_args(VerificationStatus)

LayerVersionState = Literal["validating", "staged", "failed", "active", "retired"]
#: A layer version's lifecycle: ``validating`` -> ``staged`` (valid, or with its errors
#: listed) or ``failed`` (unreadable) -> ``active`` -> ``retired``.
LAYER_VERSION_STATES: tuple[LayerVersionState, ...] = get_args(LayerVersionState)

AuditAction = Literal[
    "caller_lookup",
    "subscriber_read",
    "subscriber_list",
    "subscriber_export",
    "registry_locate",
    "key_create",
    "key_revoke",
    "auth_failure",
    "layer_change",
    "facility_change",
]
#: What an audit record says happened: reads of registry data, key changes, refused
#: requests, changes to the city's layers or facilities.
AUDIT_ACTIONS: tuple[AuditAction, ...] = get_args(AuditAction)

AuditPurpose = Literal[
    "call_taking",
    "emergency_location",
    "report_location",
    "registry_admin",
    "key_management",
    "access_control",
    "city_maintenance",
]
#: Why it happened (the purpose the data was used for).
AUDIT_PURPOSES: tuple[AuditPurpose, ...] = get_args(AuditPurpose)

#: Every flag a report may carry (screening, routing warnings, import checks).
REPORT_FLAGS: tuple[str, ...] = (
    "unregistered_caller",
    "repeat_false_reports",
    "possible_axis_swap",
    "outside_coverage",
    "rate_limited",
    "unknown_category",
    "invalid_coordinates",
    "invalid_created_date",
)
#: The personal fields of a report, erased after the retention period and when its reporter
#: is erased: who reported (number, its HMAC), where they live (a sealed home point), and free
#: text or media that may name or show people. Category, zones, times, status, resolution,
#: channel and the routing decision (without any home trace) stay for statistics.
REPORT_PERSONAL_COLUMNS: tuple[str, ...] = (
    "reporter_phone_hash",
    "reporter_phone_enc",
    "home_enc",
    "description",
    "media_url",
)
#: Name of the optional PostGIS point column on ``reports``.
GEOM_COLUMN = "geom"

#: Deterministic constraint names, so migrations and metadata agree on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no timezone, so values are stored as naive
    UTC and get ``tzinfo=UTC`` back on load. Naive inputs are refused: they hide bugs.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive UTC on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: geo_router stores UTC-aware timestamps")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to what the database returns."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: JSON everywhere, JSONB on PostgreSQL (indexable, compact).
JSONType: sa.types.TypeEngine[Any] = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


def new_uuid() -> str:
    """A random UUID4 as a 36-character string (api key ids)."""
    return str(uuid.uuid4())


def new_token_id() -> str:
    """A random 22-character URL-safe id (subscriber ids): unguessable, not a counter."""
    return secrets.token_urlsafe(16)


def new_report_id() -> str:
    """A random, non-sequential report id (``r_`` + 16 URL-safe characters)."""
    return "r_" + secrets.token_urlsafe(12)


def _in(column: str, values: tuple[str, ...]) -> str:
    """A CHECK expression ``column IN (...)``."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(16), nullable=True),
    sa.Column("prefix", sa.String(8), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.CheckConstraint(_in("role", ROLES), name="role"),
    sa.CheckConstraint(f"channel IS NULL OR {_in('channel', CHANNELS)}", name="channel"),
    sa.Index("ix_api_keys_key_hash", "key_hash", unique=True),
    sa.Index("ix_api_keys_prefix", "prefix"),
)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("phone_hash", sa.String(64), nullable=False),
    sa.Column("phone_enc", sa.Text(), nullable=False),
    sa.Column("name_enc", sa.Text(), nullable=True),
    sa.Column("address_enc", sa.Text(), nullable=True),
    # The home point, sealed (store.sealed_homes); its zones stay in the clear in "zones".
    sa.Column("home_enc", sa.Text(), nullable=True),
    sa.Column("location_source", sa.String(16), nullable=True),
    sa.Column("geocode_confidence", sa.Float(), nullable=True),
    sa.Column("zones", JSONType, nullable=False),
    sa.Column("responders", JSONType, nullable=False),
    sa.Column("verification_status", sa.String(16), nullable=False),
    sa.Column("verification_method", sa.String(64), nullable=True),
    sa.Column("consent_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(
        f"location_source IS NULL OR {_in('location_source', SUBSCRIBER_LOCATION_SOURCES)}",
        name="location_source",
    ),
    sa.CheckConstraint(_in("verification_status", VERIFICATION_STATUSES), name="verification"),
    sa.Index("ix_subscribers_phone_hash", "phone_hash", unique=True),
    sa.Index("ix_subscribers_created_at", "created_at"),
)

#: The city the store was created for: one row (id 1), written by ``city_record.claim_city``.
store_city = sa.Table(
    "store_city",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

#: What the store knows of the secrets that encrypt it, and its own id: one row (id 1), written
#: by ``secrets_check``. ``pepper_check`` and ``key_checks`` are HMAC-SHA256 of a fixed label
#: under the pepper and under each Fernet key that may have encrypted a row: they tell whether
#: configured secrets match without revealing them. ``store_id`` is what a secrets file binds to.
store_meta = sa.Table(
    "store_meta",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("store_id", sa.String(36), nullable=False),
    sa.Column("pepper_check", sa.String(64), nullable=False),
    sa.Column("key_checks", JSONType, nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

# --- report intake: reports, their zones, status history, idempotency keys
#
# api_key_id is a plain string, no foreign key: a report outlives the key that filed it.

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
    # A point at a registered caller's home is never in lon/lat: it is sealed here, with
    # the decision routed from it (store.sealed_homes); its zones are in report_zones.
    sa.Column("home_enc", sa.Text, nullable=True),
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
    sa.CheckConstraint(_in("channel", REPORT_CHANNELS), name="channel"),
    sa.CheckConstraint(_in("status", STATUSES), name="status"),
    sa.CheckConstraint(
        f"resolution IS NULL OR {_in('resolution', RESOLUTIONS)}", name="resolution"
    ),
    sa.CheckConstraint(_in("location_source", REPORT_LOCATION_SOURCES), name="location_source"),
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


@dataclass(frozen=True, slots=True)
class EncryptedField:
    """A place holding a Fernet token of personal data (``Secrets.encrypt``).

    ``column`` of ``table``; when ``member`` is set the column is JSON and the token is that
    member of it. ``phone_hash`` names the column (or JSON member, alike) holding
    ``Secrets.hash_phone`` of the decrypted value: it changes with the pepper.
    """

    table: str
    column: str
    member: str | None = None
    phone_hash: str | None = None
    #: The decrypted value is JSON holding another encrypted field (a sealed answer).
    inner: EncryptedField | None = None


#: Every encrypted field of the store, the one list key rotation re-encrypts and the start-up
#: check decrypts a sample of. A new encrypted column is registered here, nowhere else.
ENCRYPTED_FIELDS: tuple[EncryptedField, ...] = (
    EncryptedField("subscribers", "phone_enc", phone_hash="phone_hash"),
    EncryptedField("subscribers", "name_enc"),
    EncryptedField("subscribers", "address_enc"),
    EncryptedField("reports", "reporter_phone_enc", phone_hash="reporter_phone_hash"),
    # The stored answer an Idempotency-Key replays is the report with its private fields.
    EncryptedField(
        "idempotency_keys",
        "response",
        member="reporter_phone_enc",
        phone_hash="reporter_phone_hash",
    ),
    EncryptedField("subscribers", "home_enc"),
    EncryptedField("reports", "home_enc"),
    # A registry-located report's answer is sealed whole, its phone token inside.
    EncryptedField(
        "idempotency_keys",
        "response",
        member="sealed",
        inner=EncryptedField(
            "idempotency_keys",
            "response",
            member="reporter_phone_enc",
            phone_hash="reporter_phone_hash",
        ),
    ),
)

# --- the audit trail: a hash chain (``audit_repo``); ``audit_head`` is its one head row,
# locked by every append so that concurrent writers never fork the chain.

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        nullable=False,
        autoincrement=False,
    ),
    sa.Column("record_id", sa.String(36), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("subjects", JSONType, nullable=False),
    sa.Column("detail", JSONType, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    sa.CheckConstraint(_in("action", AUDIT_ACTIONS), name="action"),
    sa.CheckConstraint(_in("purpose", AUDIT_PURPOSES), name="purpose"),
    sa.Index("ix_audit_log_record_id", "record_id", unique=True),
    sa.Index("ix_audit_log_at", "at"),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

# --- versions of the city's zone layers (``layer_versions_repo``): one row per version, its
# zones as GeoJSON text in EPSG:4326, and every change of its state in ``layer_version_events``.

layer_versions = sa.Table(
    "layer_versions",
    metadata,
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
    sa.CheckConstraint(_in("state", LAYER_VERSION_STATES), name="state"),
    sa.Index("ix_layer_versions_layer_state", "layer", "state"),
)

layer_version_events = sa.Table(
    "layer_version_events",
    metadata,
    sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
    sa.Column(
        "version_id",
        sa.String(40),
        sa.ForeignKey("layer_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("note", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_layer_version_events"),
    sa.Index("ix_layer_version_events_version_id_at", "version_id", "at"),
)
