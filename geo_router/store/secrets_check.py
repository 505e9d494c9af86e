"""Secrets must match the store: check values beside the data, checked before serving.

The ``store_meta`` row holds the store's id and HMACs of a fixed label under the pepper and
under each Fernet key that may have encrypted a row (``Secrets.pepper_check`` and
``Secrets.key_checks``). Whatever opens the store for service (the app, ``geo-router serve``,
the uvicorn factory, commands that touch encrypted data) calls :func:`claim_secrets`:

* a store with check values accepts only secrets that reproduce them;
* a store holding data but no check values yet (made before they existed) is verified by
  decrypting one stored value of every encrypted field (and recomputing its phone hash), then
  its check values are recorded;
* an empty store is refused when the secrets file is bound to another store (``store_id`` in
  the file): the database that held data was deleted or replaced. ``allow_new=True`` (``geo-router
  db init --new``) is the operator saying that is intended.

Once a store has its id, a secrets file is bound to it (``Secrets.bind``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import sqlalchemy as sa

from geo_router.errors import ConfigurationError, StoreIntegrityError, StoreSecretsMismatchError
from geo_router.store.engine import write_transaction
from geo_router.store.schema import ENCRYPTED_FIELDS, EncryptedField, metadata, store_meta, utcnow

__all__ = [
    "SecretsClaim",
    "StoreSecrets",
    "check_for_service",
    "check_recorded",
    "claim_secrets",
    "embedded_store_in_use",
    "quick_check",
    "record_checks",
    "recorded_meta",
]

log = logging.getLogger(__name__)

_ROW_ID = 1

#: Where to go when the store refuses the secrets.
_RESTORE_HINT = (
    "configure the secrets this store was written with (restore the secrets file from its "
    "backup); to change secrets use 'geo-router secrets rotate'"
)


class StoreSecrets(Protocol):
    """What the check needs of ``geo_router.intake.secrets.Secrets``."""

    source: str
    bound_store: str | None

    def pepper_check(self) -> str:
        """HMAC of the check label under the pepper."""

    def key_checks(self) -> tuple[str, ...]:
        """HMAC of the check label under each Fernet key, the encrypting one first."""

    def decrypt(self, token: str) -> str:
        """Decrypt a stored token (raises ``ConfigurationError`` with the wrong key)."""

    def hash_phone(self, e164: str) -> str:
        """The peppered hash of a number."""

    def bind(self, store_id: str) -> bool:
        """Record the store id in the secrets file, if there is one."""


@dataclass(frozen=True, slots=True)
class SecretsClaim:
    """The outcome of :func:`claim_secrets` when the secrets open the store.

    ``status``: ``"accepted"`` (check values match), ``"verified"`` (a store with data and no
    check values: stored rows decrypted, values recorded) or ``"recorded"`` (a new store).
    """

    status: Literal["accepted", "verified", "recorded"]
    store_id: str


def recorded_meta(conn: sa.Connection) -> sa.Row[Any] | None:
    """The ``store_meta`` row, or None."""
    return conn.execute(sa.select(store_meta).where(store_meta.c.id == _ROW_ID)).first()


def _tokens(conn: sa.Connection, field: EncryptedField, limit: int) -> list[tuple[str, Any]]:
    """Up to ``limit`` stored (token, phone hash or None) pairs of ``field``."""
    table = metadata.tables[field.table]
    column = table.c[field.column]
    hash_column = table.c[field.phone_hash] if field.phone_hash and field.member is None else None
    query = sa.select(column, *([hash_column] if hash_column is not None else []))
    query = query.where(column.is_not(None)).limit(limit if field.member is None else 50)
    found: list[tuple[str, Any]] = []
    for row in conn.execute(query):
        value = row[0]
        if field.member is None:
            found.append((value, row[1] if hash_column is not None else None))
        elif isinstance(value, dict) and isinstance(value.get(field.member), str):
            hashed = value.get(field.phone_hash) if field.phone_hash else None
            found.append((value[field.member], hashed))
        if len(found) >= limit:
            break
    return found


def _holds_data(conn: sa.Connection, present: set[str] | None = None) -> bool:
    """Whether any table with an encrypted field (of those ``present``, default all) has a row."""
    for name in sorted({f.table for f in ENCRYPTED_FIELDS}):
        if present is not None and name not in present:
            continue
        query = sa.select(sa.literal(1)).select_from(metadata.tables[name]).limit(1)
        if conn.execute(query).first() is not None:
            return True
    return False


def _verify_sample(conn: sa.Connection, secrets: StoreSecrets) -> None:
    """Decrypt a stored value of every encrypted field, recompute its phone hash."""
    for field in ENCRYPTED_FIELDS:
        for token, hashed in _tokens(conn, field, 1):
            try:
                plain = secrets.decrypt(token)
            except ConfigurationError:
                raise StoreSecretsMismatchError(
                    f"the encryption key from {secrets.source} does not decrypt the data in "
                    f"this store ({field.table}.{field.column}): {_RESTORE_HINT}"
                ) from None
            if hashed is not None and secrets.hash_phone(plain) != hashed:
                raise StoreSecretsMismatchError(
                    f"the pepper from {secrets.source} does not match the phone hashes in this "
                    f"store ({field.table}): {_RESTORE_HINT}"
                )


def check_recorded(row: sa.Row[Any], secrets: StoreSecrets) -> Sequence[str]:
    """Refuse secrets that do not reproduce the check values; the key checks to record."""
    if secrets.pepper_check() != row.pepper_check:
        raise StoreSecretsMismatchError(
            f"the pepper from {secrets.source} is not the one this store was written with: "
            f"{_RESTORE_HINT}"
        )
    configured = secrets.key_checks()
    recorded = list(row.key_checks)
    if not set(recorded) <= set(configured):
        raise StoreSecretsMismatchError(
            f"the encryption key from {secrets.source} is not the one this store was written "
            f"with (or a key that encrypted some of its rows is missing): {_RESTORE_HINT}"
        )
    # A key put first by hand now encrypts too: remember it, so it is never dropped unnoticed.
    return recorded if configured[0] in recorded else [*recorded, configured[0]]


def verify_secrets(conn: sa.Connection, secrets: StoreSecrets) -> None:
    """Refuse ``secrets`` that do not open this store, recording nothing (for migrations that
    encrypt stored data: with the wrong key they would seal it for good)."""
    row = recorded_meta(conn)
    if row is not None:
        check_recorded(row, secrets)
    elif _holds_data(conn):
        _verify_sample(conn, secrets)


def record_checks(
    conn: sa.Connection, secrets: StoreSecrets, store_id: str, *, replace: bool = False
) -> None:
    """Write (or, with ``replace``, overwrite) the check values of ``secrets``."""
    values = {
        "store_id": store_id,
        "pepper_check": secrets.pepper_check(),
        "key_checks": list(secrets.key_checks()),
        "updated_at": utcnow(),
    }
    if replace:
        conn.execute(sa.update(store_meta).where(store_meta.c.id == _ROW_ID).values(**values))
    else:
        values["recorded_at"] = values["updated_at"]
        conn.execute(sa.insert(store_meta).values(id=_ROW_ID, **values))


def _claim(conn: sa.Connection, secrets: StoreSecrets, allow_new: bool) -> SecretsClaim:
    if conn.dialect.name == "postgresql":
        # Workers starting together must not both find no row and both insert one (SQLite's
        # BEGIN IMMEDIATE already serializes them); readers are not blocked.
        conn.execute(sa.text("LOCK TABLE store_meta IN SHARE ROW EXCLUSIVE MODE"))
    row = recorded_meta(conn)
    bound = secrets.bound_store
    if row is not None:
        key_checks = check_recorded(row, secrets)
        if bound is not None and bound != row.store_id and not allow_new:
            raise StoreSecretsMismatchError(
                f"the secrets from {secrets.source} are bound to store {bound}, but this is "
                f"store {row.store_id}: this database is not the one they were used with. "
                "Point GEO_ROUTER_DATABASE_URL at that store, restore it ('geo-router restore'), "
                "or rebind them to this one with 'geo-router db init --new'"
            )
        if list(key_checks) != list(row.key_checks):
            conn.execute(
                sa.update(store_meta)
                .where(store_meta.c.id == _ROW_ID)
                .values(key_checks=list(key_checks), updated_at=utcnow())
            )
        return SecretsClaim("accepted", row.store_id)
    if _holds_data(conn):
        _verify_sample(conn, secrets)
        status: Literal["verified", "recorded"] = "verified"
    elif bound is not None and not allow_new:
        raise StoreSecretsMismatchError(
            f"this database is empty, but the secrets from {secrets.source} belong to store "
            f"{bound}, which held data: the database was deleted or replaced. Restore it "
            "('geo-router restore BACKUP') or point GEO_ROUTER_DATABASE_URL at it; to start an "
            "empty store with these secrets on purpose, run 'geo-router db init --new'"
        )
    else:
        status = "recorded"
    store_id = str(uuid.uuid4())
    record_checks(conn, secrets, store_id)
    return SecretsClaim(status, store_id)


def claim_secrets(
    engine: sa.Engine, secrets: StoreSecrets, *, allow_new: bool = False
) -> SecretsClaim:
    """Check that ``secrets`` open the store; record check values and bind the secrets file.

    Parameters
    ----------
    engine
        The migrated store.
    secrets
        The configured secrets.
    allow_new
        Accept an empty store although the secrets file is bound to another store, and rebind
        the file to this one (``geo-router db init --new``).

    Raises
    ------
    StoreSecretsMismatchError
        The secrets do not open this store, or the store is not the one they are bound to.
    """
    with write_transaction(engine) as conn:
        claim = _claim(conn, secrets, allow_new)
    if secrets.bound_store != claim.store_id:
        secrets.bind(claim.store_id)
    if claim.status == "verified":
        log.info("secrets verified against stored data; check values recorded")
    return claim


def embedded_store_in_use(path: Path) -> bool:
    """Whether the SQLite file ``path`` exists and has check values or encrypted data.

    Read-only: no migration, nothing created.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return False
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if store_meta.name in tables and recorded_meta(conn) is not None:
                return True
            return _holds_data(conn, tables)
    except sa.exc.DatabaseError as exc:
        raise StoreIntegrityError(f"cannot read the database {path}: {exc.orig}") from None
    finally:
        engine.dispose()


def quick_check(engine: sa.Engine) -> None:
    """SQLite's ``PRAGMA quick_check`` (every page, b-tree and record format; no index
    contents); nothing on PostgreSQL.

    Raises
    ------
    StoreIntegrityError
        The file is damaged: the first problem SQLite names, and what to do.
    """
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            problems = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(5)")]
    except sa.exc.DatabaseError as exc:
        problems = [str(exc.orig)]
    if problems != ["ok"]:
        raise StoreIntegrityError(
            f"the database {engine.url.database} is damaged (SQLite quick_check: "
            f"{problems[0]}): restore it from a backup ('geo-router restore BACKUP')"
        )


def check_for_service(
    engine: sa.Engine,
    secrets: StoreSecrets,
    *,
    allow_new: bool = False,
    integrity: bool = True,
) -> SecretsClaim:
    """Everything a store must pass before it serves: :func:`quick_check` (unless
    ``integrity=False``: this process just ran it), then :func:`claim_secrets`.

    ``quick_check`` reads the whole file: about 1.8 s for a 276 MB store of 200,000 reports
    with a warm page cache (``benchmarks/bench_startup_check.py``); the secrets check is
    milliseconds.

    Raises
    ------
    StoreIntegrityError, StoreSecretsMismatchError
        One line saying what is wrong and what to do.
    """
    if integrity:
        quick_check(engine)
    return claim_secrets(engine, secrets, allow_new=allow_new)
