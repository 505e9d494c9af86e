"""The store: SQLAlchemy 2 + Alembic on SQLite (embedded) or PostgreSQL."""

from geo_router.store.database import Store, current_revision, open_store, upgrade
from geo_router.store.engine import make_engine, write_transaction
from geo_router.store.keys import ApiKeyRecord, KeyStore
from geo_router.store.schema import CHANNELS, ROLES

__all__ = [
    "CHANNELS",
    "ROLES",
    "ApiKeyRecord",
    "KeyStore",
    "Store",
    "current_revision",
    "make_engine",
    "open_store",
    "upgrade",
    "write_transaction",
]
