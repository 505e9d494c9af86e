"""Database outages become one library error, StoreUnavailableError; other errors pass."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from geo_router.errors import StoreUnavailableError
from geo_router.store import Store, make_engine
from geo_router.store.outages import outage_reason


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once the socket is


def test_postgres_on_a_closed_port_is_unavailable_not_a_driver_error() -> None:
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{_closed_port()}/x")
    try:
        with pytest.raises(StoreUnavailableError) as caught, engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        assert caught.value.detail == {"reason": "connection failed"}
        assert "127.0.0.1" not in caught.value.message  # never the URL
        assert caught.value.__cause__ is not None  # the driver's error, for the log
    finally:
        engine.dispose()


def test_a_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    with Store.from_url(f"sqlite:///{folder / 'db.sqlite3'}") as store:
        store.keys.create("admin", "ops")
        store.engine.dispose()
        # The data folder is gone (unmounted, replaced): a real failure, not a mock.
        folder.rename(tmp_path / "moved")
        folder.write_text("not a folder")
        with pytest.raises(StoreUnavailableError, match="cannot be opened"):
            store.keys.count_all()
        assert not store.ping()


def test_programming_errors_are_not_outages(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with pytest.raises(sa.exc.OperationalError, match="no such table"), engine.connect() as c:
            c.execute(sa.text("SELECT * FROM no_such_table"))
    finally:
        engine.dispose()


def test_outage_reasons_of_driver_errors() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    assert outage_reason(full) == "disk full"
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorname = "SQLITE_IOERR_WRITE"  # type: ignore[attr-defined]
    assert outage_reason(io) == "I/O error"
    constraint = sqlite3.IntegrityError("UNIQUE constraint failed")
    constraint.sqlite_errorname = "SQLITE_CONSTRAINT_UNIQUE"  # type: ignore[attr-defined]
    assert outage_reason(constraint) is None
    assert outage_reason(None, is_disconnect=True) == "connection lost"
    psycopg = pytest.importorskip("psycopg")
    assert outage_reason(psycopg.errors.DiskFull()) is not None
    assert outage_reason(psycopg.errors.AdminShutdown()) is not None
    assert outage_reason(psycopg.errors.UniqueViolation()) is None
