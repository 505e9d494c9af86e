"""Tables of the store (SQLAlchemy Core) and the column types migrations share.

The migrations in ``migrations/versions`` create exactly these tables; a test compares the
two. Later migrations (reports) import ``UTCDateTime``, ``JSONType`` and ``metadata`` from
here.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

#: Key roles, least to most powerful.
ROLES: tuple[str, ...] = ("intake", "planner", "analyst", "admin")
#: Intake channels an intake key may be bound to.
CHANNELS: tuple[str, ...] = ("call", "sms", "social", "web", "app")
#: How a subscriber's location was obtained.
LOCATION_SOURCES: tuple[str, ...] = ("given", "geocoded")
#: Verification states of a subscriber.
VERIFICATION_STATUSES: tuple[str, ...] = ("unverified", "verified", "rejected")

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
    sa.CheckConstraint(
        f"location_source IS NULL OR {_in('location_source', LOCATION_SOURCES)}",
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
