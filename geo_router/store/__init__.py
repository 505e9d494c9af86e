"""The store: SQLAlchemy 2 + Alembic on SQLite (embedded) or PostgreSQL."""

from geo_router.store.city_record import CityClaim, claim_city, claim_city_profile, recorded_city
from geo_router.store.database import (
    Store,
    current_revision,
    describe_store,
    open_store,
    upgrade,
)
from geo_router.store.engine import make_engine, write_transaction
from geo_router.store.keys import ApiKeyRecord, KeyStore
from geo_router.store.schema import CHANNELS, ROLES

__all__ = [
    "CHANNELS",
    "ROLES",
    "ApiKeyRecord",
    "CityClaim",
    "KeyStore",
    "Store",
    "claim_city",
    "claim_city_profile",
    "current_revision",
    "describe_store",
    "make_engine",
    "open_store",
    "recorded_city",
    "upgrade",
    "write_transaction",
]
