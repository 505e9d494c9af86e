"""The database: engines, Alembic migrations (programmatic, no alembic.ini) and ``Store``."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url

from geo_router.errors import ConfigurationError, StoreIntegrityError, StoreUnavailableError
from geo_router.settings import StoreSettings
from geo_router.store.engine import _sqlite_file, make_engine, write_transaction
from geo_router.store.keys import KeyStore
from geo_router.store.sealed_homes import Cipher

log = logging.getLogger(__name__)

#: Inside the package, so migrations run from an installed wheel too.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Arbitrary constant: serializes concurrent upgrades of one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x6765_6F72  # "geor"

__all__ = [
    "MIGRATIONS_DIR",
    "Store",
    "alembic_config",
    "current_revision",
    "describe_store",
    "head_revision",
    "make_engine",
    "open_store",
    "upgrade",
]


def describe_store(target: StoreSettings | str | URL | sa.Engine) -> str:
    """Which store ``target`` uses, for a ``store: ...`` line: never shows a password.

    Parameters
    ----------
    target
        Store settings (their ``effective_database_url``), a database URL or an engine.

    Returns
    -------
    str
        The SQLite file's absolute path, or the database URL with its password masked
        (``postgresql://user:***@host/db``).
    """
    if isinstance(target, StoreSettings):
        if not target.database_url:
            return str(target.sqlite_path.resolve())
        target = target.database_url
    if isinstance(target, sa.Engine):
        target = target.url
    try:
        url = make_url(target)
    except Exception:  # sqlalchemy raises ArgumentError or ValueError; never echo the text
        return "an unparseable database URL (GEO_ROUTER_DATABASE_URL)"
    if url.drivername.split("+")[0] == "sqlite":
        path = _sqlite_file(url)
        if path is not None:
            return str(path.resolve())
        if not url.database or url.database == ":memory:":
            return "SQLite in memory (nothing is kept)"
    if "password" in url.query:  # libpq also takes the password as a query parameter
        url = url.update_query_dict({"password": "***"})
    return url.render_as_string(hide_password=True)


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise ConfigurationError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (None when never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(
    url_or_engine: str | URL | sa.Engine, revision: str = "head", *, cipher: Cipher | None = None
) -> None:
    """Apply migrations up to ``revision`` (default: head).

    ``cipher`` (the ``Secrets``) lets migrations that encrypt stored data do so (0006 seals
    home points); without it such a migration refuses a database that holds that data.

    Works on SQLite (batch mode) and PostgreSQL; runs in the schema the URL's search_path
    names (``?options=-csearch_path%3Dmy_schema,public``). Concurrent upgrades (several workers
    starting at once) are serialized by a lock and the second one finds nothing to do.
    """
    if isinstance(url_or_engine, sa.Engine):
        engine, owned = url_or_engine, False
    else:
        engine, owned = make_engine(url_or_engine), True
    config = alembic_config()
    try:
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            config.attributes["connection"] = conn
            config.attributes["cipher"] = cipher
            command.upgrade(config, revision)
    finally:
        config.attributes.pop("connection", None)
        config.attributes.pop("cipher", None)
        if owned:
            engine.dispose()
    log.info("database at revision %s", revision)


def _damaged(engine: sa.Engine, exc: sa.exc.DatabaseError) -> bool:
    """Whether a SQLite error says the file itself is broken (not locked, not full)."""
    text = str(exc.orig).lower()
    return engine.dialect.name == "sqlite" and ("malformed" in text or "not a database" in text)


class Store:
    """The service's database: an engine, migrations applied, and the key store.

    Parameters
    ----------
    engine
        An engine from ``make_engine``.
    """

    def __init__(self, engine: sa.Engine, *, key_cache_ttl_s: float = 30.0) -> None:
        self.engine = engine
        self.keys = KeyStore(engine, cache_ttl_s=key_cache_ttl_s)

    @classmethod
    def open(
        cls, settings: StoreSettings, *, migrate: bool = True, cipher: Cipher | None = None
    ) -> Store:
        """Open the configured database (``GEO_ROUTER_DATABASE_URL``) or the embedded SQLite.

        Parameters
        ----------
        settings
            Store settings; without ``database_url`` the SQLite file lives in ``data_dir``.
        migrate
            Apply pending migrations first (the default).
        cipher
            The secrets, for migrations that encrypt stored data (see :func:`upgrade`).
        """
        return cls.from_url(
            settings.effective_database_url,
            migrate=migrate,
            cipher=cipher,
            key_cache_ttl_s=settings.key_cache_ttl_s,
        )

    @classmethod
    def from_url(
        cls,
        url: str | URL,
        *,
        migrate: bool = True,
        cipher: Cipher | None = None,
        key_cache_ttl_s: float = 30.0,
    ) -> Store:
        """Open a database by URL, migrating it (with ``cipher``) unless ``migrate=False``."""
        engine = make_engine(url)
        if migrate:
            try:
                upgrade(engine, cipher=cipher)
            except sa.exc.DatabaseError as exc:
                engine.dispose()
                if _damaged(engine, exc):
                    raise StoreIntegrityError(
                        f"the database {describe_store(engine)} is damaged ({exc.orig}): "
                        "restore it from a backup ('geo-router restore BACKUP')"
                    ) from None
                raise
        return cls(engine, key_cache_ttl_s=key_cache_ttl_s)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def ping(self) -> bool:
        """Whether the database answers a trivial query (for ``/readyz``)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except (sa.exc.SQLAlchemyError, StoreUnavailableError) as exc:
            log.warning("database ping failed: %s", type(exc).__name__)
            return False
        return True

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(
    settings: StoreSettings, *, migrate: bool = True, cipher: Cipher | None = None
) -> Store:
    """Open the store for ``settings`` (same as ``Store.open``)."""
    return Store.open(settings, migrate=migrate, cipher=cipher)
