"""One library error for a database that cannot be used: ``StoreUnavailableError``.

Every engine made by ``make_engine`` carries a ``handle_error`` listener that turns a
driver's outage (connection refused or lost, server shutting down, disk full, I/O error, a
file that cannot be opened or written, a lock held too long) into
:class:`~geo_router.errors.StoreUnavailableError`, so no code above the store sees an
SQLAlchemy exception for it: intake journals emergencies, the API answers 503 with
``Retry-After``. Programming errors (a missing table, a constraint) pass through unchanged.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from geo_router.errors import StoreUnavailableError

__all__ = ["install_outage_translation", "outage_reason"]

#: SQLite result codes (``sqlite3.Error.sqlite_errorname``, extended codes start with these)
#: that mean "the file cannot be used now", with the reason given to callers.
_SQLITE_OUTAGES: dict[str, str] = {
    "SQLITE_FULL": "disk full",
    "SQLITE_IOERR": "I/O error",
    "SQLITE_CANTOPEN": "database file cannot be opened",
    "SQLITE_READONLY": "database file is read-only",
    "SQLITE_BUSY": "database is locked",
    "SQLITE_LOCKED": "database is locked",
    "SQLITE_PERM": "permission denied",
}

#: PostgreSQL SQLSTATE classes (and codes) of outages: connection exceptions, insufficient
#: resources (disk full, out of memory), operator intervention (shutdown), system errors.
_PG_OUTAGES: dict[str, str] = {
    "08": "connection failed",
    "53": "insufficient resources (disk full or out of memory)",
    "57P": "server shutting down or starting",
    "58": "system or I/O error",
}


def outage_reason(dbapi_error: BaseException | None, *, is_disconnect: bool = False) -> str | None:
    """Why a driver's exception means the database is unavailable, or None when it does not.

    Parameters
    ----------
    dbapi_error
        The driver's exception (``sqlite3.Error``, ``psycopg.Error``).
    is_disconnect
        SQLAlchemy's own verdict that the connection was lost.
    """
    if is_disconnect:
        return "connection lost"
    if dbapi_error is None:
        return None
    name = getattr(dbapi_error, "sqlite_errorname", None)
    if isinstance(name, str):
        for prefix, reason in _SQLITE_OUTAGES.items():
            if name.startswith(prefix):
                return reason
        return None
    module = type(dbapi_error).__module__
    if module.startswith("psycopg"):
        sqlstate = getattr(dbapi_error, "sqlstate", None)
        if sqlstate is None:
            # psycopg raises OperationalError without a SQLSTATE when it cannot connect.
            return "connection failed" if type(dbapi_error).__name__ == "OperationalError" else None
        for prefix, reason in _PG_OUTAGES.items():
            if sqlstate.startswith(prefix):
                return reason
    return None


def install_outage_translation(engine: sa.Engine) -> None:
    """Make ``engine`` raise ``StoreUnavailableError`` for outages (see the module doc)."""

    @event.listens_for(engine, "handle_error")
    def _translate(context: Any) -> None:
        reason = outage_reason(context.original_exception, is_disconnect=context.is_disconnect)
        if reason is None:
            return
        raise StoreUnavailableError(
            f"the database is unavailable ({reason}); try again shortly",
            detail={"reason": reason},
        ) from context.sqlalchemy_exception
