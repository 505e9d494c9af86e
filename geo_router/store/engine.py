"""Engines and write transactions for SQLite (embedded) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from geo_router.errors import ConfigurationError
from geo_router.store.outages import install_outage_translation

#: How long a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: Seconds to wait for a PostgreSQL server (unless the URL sets ``connect_timeout``).
PG_CONNECT_TIMEOUT_S = 5

#: Execution option that asks for ``BEGIN IMMEDIATE`` on SQLite (see ``write_transaction``).
_IMMEDIATE = "geo_router_begin_immediate"


def _normalize_url(url: str | URL) -> URL:
    """Parse the URL and pick psycopg 3 for plain ``postgresql://`` URLs."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError or ValueError
        raise ConfigurationError(
            f"GEO_ROUTER_DATABASE_URL is not a database URL: {exc}",
            detail={"field": "database_url"},
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory databases."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def sqlite_file(engine: sa.Engine) -> Path | None:
    """The file of a SQLite engine (None in memory or on PostgreSQL)."""
    return _sqlite_file(engine.url) if engine.dialect.name == "sqlite" else None


#: Mode of every file of the embedded database: it holds personal data (hashed, encrypted,
#: but also report texts and zones), so only its owner reads it.
PRIVATE_FILE_MODE = 0o600


def private_sqlite_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing; make it, -wal and -shm 0600 if not.

    SQLite gives the -wal and -shm files it creates the mode of the database file, so a
    database file created 0600 keeps them 0600 too; an older, world-readable one is narrowed.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    for suffix in ("", "-wal", "-shm", "-journal"):
        member = path.with_name(path.name + suffix)
        try:
            if member.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
                member.chmod(PRIVATE_FILE_MODE)
        except FileNotFoundError:
            continue
        except PermissionError:  # not ours (a read-only copy): leave it, SQLite will say
            continue


def _configure_sqlite(engine: sa.Engine) -> None:
    """Durable, concurrent SQLite: WAL, fsync on commit, foreign keys, a busy timeout, and
    deleted content overwritten (``secure_delete``: an erased number, a home point sealed by
    a migration or a purged description does not linger in free pages of the file).

    pysqlite's own transaction handling neither wraps DDL nor lets us choose the BEGIN flavour;
    turning it off and emitting BEGIN ourselves makes migrations atomic and lets writers take
    the write lock up front (``BEGIN IMMEDIATE``) instead of failing on lock upgrade.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA secure_delete=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | URL) -> sa.Engine:
    """Create an engine for SQLite or PostgreSQL.

    Parameters
    ----------
    url
        SQLAlchemy URL. ``postgresql://`` uses psycopg 3; a SQLite file is created mode 0600
        (its folder 0700) before SQLite opens it; SQLite connections get WAL,
        ``synchronous=FULL``, foreign keys and a busy timeout on every connect. An outage
        (unreachable, disk full, I/O error) raises ``StoreUnavailableError``
        (``geo_router.store.outages``).

    Returns
    -------
    sqlalchemy.Engine
    """
    parsed = _normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            private_sqlite_file(path)
        engine = sa.create_engine(parsed)
        _configure_sqlite(engine)
        install_outage_translation(engine)
        return engine
    if backend == "postgresql":
        # An unreachable server must fail fast (503, journal) rather than hang a worker.
        connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        if "connect_timeout" in parsed.query:
            connect_args = {}
        engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        install_outage_translation(engine)
        return engine
    raise ConfigurationError(
        f"unsupported database {backend!r} in GEO_ROUTER_DATABASE_URL: use sqlite or postgresql",
        detail={"field": "database_url", "backend": backend},
    )


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that will write: on SQLite it takes the write lock at BEGIN.

    A deferred SQLite transaction that reads and then writes fails at once with "database is
    locked" when another writer got in between; ``BEGIN IMMEDIATE`` waits (busy timeout)
    instead. On PostgreSQL this is a plain ``engine.begin()``.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(**{_IMMEDIATE: True})
        with conn.begin():
            yield conn


@contextmanager
def scratch_schema(url: str, prefix: str = "t") -> Iterator[str]:
    """A fresh PostgreSQL schema on ``url``, dropped afterwards; yields the URL that uses it.

    For rehearsals and tests that share one database: each gets a schema of its own
    (``search_path`` set through libpq's ``options``), so none sees another's tables.
    """
    import uuid

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema},public"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
