"""Who holds the store: serving processes share a lock, maintenance takes it alone.

Every process that serves the store (each app worker) holds a *shared* lock for its life;
commands that must not run under a live server (``geo-router restore``, ``geo-router secrets
rotate``) take it *exclusively*, without waiting: a server that still runs makes them refuse
(unless forced), and a server starting meanwhile refuses instead of writing with stale
secrets or into a file about to be replaced.

* SQLite: ``flock`` on ``<database>-serving.lock`` beside the file (mode 0600). The kernel
  drops the lock when the process dies, so a killed server never leaves it behind.
* PostgreSQL: a session advisory lock (``pg_advisory_lock_shared`` / ``pg_try_advisory_lock``)
  on a connection kept open; dropped with the connection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from geo_router.errors import StoreInUseError
from geo_router.store.engine import PRIVATE_FILE_MODE, sqlite_file

try:  # pragma: no cover - Windows has no flock: the lock is then advisory nowhere
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["ServingLock", "exclusive_store", "lock_path"]

#: Arbitrary constant naming the advisory lock on PostgreSQL ("gsrv").
_PG_SERVING_LOCK = 0x6773_7276


def _pg_lock_key() -> tuple[int, sa.ColumnElement[int]]:
    """The advisory lock's two keys: ours, and the store's schema (stores sharing a database
    in different schemas do not block one another)."""
    return _PG_SERVING_LOCK, sa.func.hashtext(sa.func.current_schema())


def lock_path(database: Path) -> Path:
    """The lock file of a SQLite database."""
    return database.with_name(database.name + "-serving.lock")


def _open_lock_file(database: Path) -> int:
    return os.open(lock_path(database), os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)


class ServingLock:
    """The shared lock a serving process holds until :meth:`release`.

    Parameters
    ----------
    engine
        The store's engine.

    Raises
    ------
    StoreInUseError
        A maintenance command holds the store exclusively right now.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._fd: int | None = None
        self._conn: sa.Connection | None = None
        database = sqlite_file(engine)
        if engine.dialect.name == "postgresql":
            self._conn = engine.connect()
            got = self._conn.execute(
                sa.select(sa.func.pg_try_advisory_lock_shared(*_pg_lock_key()))
            ).scalar()
            self._conn.commit()
            if not got:
                self.release()
                raise StoreInUseError(_BUSY_SERVING)
        elif database is not None and fcntl is not None:
            self._fd = _open_lock_file(database)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                self.release()
                raise StoreInUseError(_BUSY_SERVING) from None

    def release(self) -> None:
        """Let go of the lock (closing its file or connection)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            # Closing returns the connection to the pool, where a session lock would live on:
            # the connection itself is thrown away, and the lock with it.
            self._conn.invalidate()
            self._conn.close()
            self._conn = None


_BUSY_SERVING = (
    "a maintenance command (geo-router restore or secrets rotate) holds the store: "
    "start the server again when it is done"
)
_BUSY_MAINTENANCE = (
    "a server is running on this store: stop it first (or pass --force if you are sure "
    "nothing writes to it)"
)


@contextmanager
def exclusive_store(engine: sa.Engine, *, force: bool = False) -> Iterator[None]:
    """Hold the store alone while the block runs; refuse if a server holds it.

    Raises
    ------
    StoreInUseError
        A serving process holds the shared lock (and ``force`` is False).
    """
    database = sqlite_file(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(*_pg_lock_key()))).scalar()
            conn.commit()
            if not got and not force:
                raise StoreInUseError(_BUSY_MAINTENANCE)
            try:
                yield
            finally:
                if got:
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(*_pg_lock_key())))
                    conn.commit()
        return
    if database is None or fcntl is None:
        yield
        return
    fd = _open_lock_file(database)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not force:
                raise StoreInUseError(_BUSY_MAINTENANCE) from None
        yield
    finally:
        os.close(fd)
