"""Backup and restore of the embedded SQLite store, check values included.

A backup is a consistent copy made with SQLite's online backup API while servers run; it
carries the ``store_meta`` row (store id, check values), so a restore verifies the configured
secrets against the backup before anything is replaced. A restore is atomic: the backup is
copied beside the database, migrated, checked (``quick_check``, secrets), fsynced, and renamed
over it; the replaced database is kept as ``<database>.pre-restore-<time>``. It refuses while
a server holds the store (``serving_lock``) unless forced.

PostgreSQL stores are backed up with ``pg_dump`` / ``pg_restore`` (README): ``store_meta`` is
a table, so its check values travel inside the dump.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from geo_router.errors import ConfigurationError
from geo_router.store.database import upgrade
from geo_router.store.engine import PRIVATE_FILE_MODE, make_engine, sqlite_file
from geo_router.store.secrets_check import StoreSecrets, check_for_service, recorded_meta
from geo_router.store.serving_lock import exclusive_store

__all__ = ["BackupInfo", "RestoreInfo", "backup_sqlite", "restore_sqlite"]


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """A backup written: where, its size, and the store id it carries (None: no check values)."""

    path: Path
    bytes: int
    store_id: str | None


@dataclass(frozen=True, slots=True)
class RestoreInfo:
    """A restore done: the store id now served and where the replaced database was kept."""

    store_id: str
    previous: Path | None


def _database(engine: sa.Engine) -> Path:
    path = sqlite_file(engine)
    if path is None:
        raise ConfigurationError(
            "backup and restore work on the embedded SQLite store; for PostgreSQL use pg_dump "
            "and pg_restore (README, 'Backup and restore')"
        )
    return path


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _beside(path: Path, tag: str) -> Path:
    """A new empty file next to ``path`` (mode 0600) for a copy in progress."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    tmp = path.with_name(f".{path.name}.{tag}-{stamp}-{os.getpid()}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    return tmp


def _copy_database(source: Path, dest: Path, *, read_only: bool) -> None:
    """Copy the SQLite database ``source`` into ``dest`` with the online backup API."""
    uri = f"file:{source}?mode=ro" if read_only else f"file:{source}"
    try:
        with (
            closing(sqlite3.connect(uri, uri=True)) as src,
            closing(sqlite3.connect(dest)) as dst,
        ):
            src.backup(dst)
            # A single self-contained file: no -wal beside the copy to lose or mix up.
            dst.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.DatabaseError as exc:
        raise ConfigurationError(f"cannot copy the database {source}: {exc}") from None
    _fsync(dest)


def _store_id(path: Path) -> str | None:
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("store_meta"):
                return None
            row = recorded_meta(conn)
            return None if row is None else str(row.store_id)
    finally:
        engine.dispose()


def backup_sqlite(engine: sa.Engine, dest: Path) -> BackupInfo:
    """Write a consistent copy of the store to ``dest`` (mode 0600), never overwriting.

    Servers may keep running: the online backup API copies one consistent state.

    Raises
    ------
    ConfigurationError
        Not a SQLite store, ``dest`` exists, or the copy failed.
    """
    source = _database(engine)
    if dest.exists():
        raise ConfigurationError(f"{dest} exists: a backup never overwrites a file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(dest, "backup")
    try:
        _copy_database(source, tmp, read_only=False)
        os.link(tmp, dest)  # atomic, and refuses to overwrite a file made meanwhile
    except FileExistsError:
        raise ConfigurationError(f"{dest} exists: a backup never overwrites a file") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync(dest.parent)
    return BackupInfo(dest, dest.stat().st_size, _store_id(dest))


def _checked_copy(backup: Path, database: Path, secrets: StoreSecrets) -> tuple[Path, str]:
    """The backup copied beside ``database``, migrated and checked; (copy, its store id)."""
    tmp = _beside(database, "restore")
    try:
        _copy_database(backup, tmp, read_only=True)
        engine = make_engine(f"sqlite:///{tmp}")
        try:
            upgrade(engine)
            # Restoring is the operator's explicit choice: the secrets file is rebound to the
            # backup's store; the check values must still match.
            claim = check_for_service(engine, secrets, allow_new=True)
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            engine.dispose()
        for suffix in ("-wal", "-shm"):
            tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
        _fsync(tmp)
    except BaseException:
        for suffix in ("", "-wal", "-shm"):
            tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
        raise
    return tmp, claim.store_id


def _retire(database: Path) -> Path | None:
    """Checkpoint the current database, keep it as ``.pre-restore-<time>``; drop -wal/-shm."""
    if not database.exists() or database.stat().st_size == 0:
        return None  # nothing worth keeping (make_engine creates the file empty)
    with closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    kept = database.with_name(f"{database.name}.pre-restore-{stamp}")
    os.link(database, kept)
    for suffix in ("-wal", "-shm", "-journal"):
        with suppress(FileNotFoundError):
            database.with_name(database.name + suffix).unlink()
    return kept


def restore_sqlite(
    engine: sa.Engine, backup: Path, secrets: StoreSecrets, *, force: bool = False
) -> RestoreInfo:
    """Replace the store with ``backup``, atomically, after checking it against ``secrets``.

    Raises
    ------
    ConfigurationError
        Not a SQLite store, or an unreadable backup.
    StoreSecretsMismatchError
        The secrets do not open the backup (nothing is replaced).
    StoreIntegrityError
        The backup is damaged (nothing is replaced).
    StoreInUseError
        A server holds the store and ``force`` is False (nothing is replaced).
    """
    database = _database(engine)
    if not backup.is_file():
        raise ConfigurationError(f"backup {backup} does not exist")
    engine.dispose()  # our own pooled connections must not outlive the file they point at
    with exclusive_store(engine, force=force):
        copy, store_id = _checked_copy(backup, database, secrets)
        try:
            kept = _retire(database)
            os.replace(copy, database)
            _fsync(database.parent)
        finally:
            copy.unlink(missing_ok=True)
    return RestoreInfo(store_id, kept)
