"""Key rotation: re-encrypt every encrypted field under new secrets, in one transaction.

The fields come from the one registry, ``schema.ENCRYPTED_FIELDS``; with a new pepper the
phone hash beside each phone is recomputed from the decrypted number. The check values are
replaced in the same transaction, so the store never holds a mix of old and new keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa

from geo_router.errors import StoreSecretsMismatchError
from geo_router.store.engine import write_transaction
from geo_router.store.schema import ENCRYPTED_FIELDS, EncryptedField, metadata
from geo_router.store.secrets_check import (
    StoreSecrets,
    check_recorded,
    record_checks,
    recorded_meta,
)

__all__ = ["Encrypter", "rotate_store"]


class Encrypter(StoreSecrets, Protocol):
    """The new secrets: what rotation needs besides the check."""

    def encrypt(self, text: str) -> str:
        """A fresh token of ``text``."""


def _rewrap(
    field: EncryptedField, old: StoreSecrets, new: Encrypter
) -> Callable[[str], tuple[str, str | None]]:
    """Token under ``old`` -> (token under ``new``, new phone hash or None)."""

    inner = _rewrap(field.inner, old, new) if field.inner is not None else None

    def rewrap(token: str) -> tuple[str, str | None]:
        plain = old.decrypt(token)
        if inner is not None:
            plain = json.dumps(_rewrap_member(json.loads(plain), field.inner, inner))
        return new.encrypt(plain), new.hash_phone(plain) if field.phone_hash else None

    return rewrap


def _rewrap_member(
    value: dict[str, Any],
    field: EncryptedField | None,
    rewrap: Callable[[str], tuple[str, str | None]],
) -> dict[str, Any]:
    """``value`` with ``field.member`` re-encrypted (and its phone hash recomputed)."""
    if field is None or field.member is None or not isinstance(value.get(field.member), str):
        return value
    token, hashed = rewrap(value[field.member])
    value = {**value, field.member: token}
    if field.phone_hash:
        value[field.phone_hash] = hashed
    return value


def _rotate_field(
    conn: sa.Connection, field: EncryptedField, old: StoreSecrets, new: Encrypter
) -> int:
    """Re-encrypt ``field`` in every row; the number of values re-encrypted."""
    table = metadata.tables[field.table]
    keys = list(table.primary_key.columns)
    column = table.c[field.column]
    rewrap = _rewrap(field, old, new)
    done = 0
    rows = conn.execute(sa.select(*keys, column).where(column.is_not(None))).all()
    for row in rows:
        where = sa.and_(*(key == row[i] for i, key in enumerate(keys)))
        value: Any = row[len(keys)]
        changes: dict[str, Any]
        if field.member is None:
            token, hashed = rewrap(value)
            changes = {field.column: token}
            if field.phone_hash:
                changes[field.phone_hash] = hashed
        else:
            if not isinstance(value, dict) or not isinstance(value.get(field.member), str):
                continue
            changes = {field.column: _rewrap_member(value, field, rewrap)}
        conn.execute(sa.update(table).where(where).values(**changes))
        done += 1
    return done


def rotate_store(
    engine: sa.Engine,
    old: StoreSecrets,
    new: Encrypter,
    *,
    before_commit: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Re-encrypt the store from ``old`` to ``new`` secrets and record ``new``'s check values.

    All or nothing: one write transaction. ``before_commit`` runs last inside it (the command
    writes the new secrets file there: the store never holds data under keys not yet written
    down). Returns the count of values re-encrypted per ``table.column``.

    Raises
    ------
    StoreSecretsMismatchError
        ``old`` are not the secrets of this store (or it has none recorded yet: start it once).
    """
    counts: dict[str, int] = {}
    with write_transaction(engine) as conn:
        row = recorded_meta(conn)
        if row is None:
            raise StoreSecretsMismatchError(
                "this store has no check values yet: start it once (or run 'geo-router db "
                "init') so the current secrets are verified, then rotate"
            )
        check_recorded(row, old)
        for field in ENCRYPTED_FIELDS:
            name = f"{field.table}.{field.column}" + (f".{field.member}" if field.member else "")
            counts[name] = _rotate_field(conn, field, old, new)
        record_checks(conn, new, row.store_id, replace=True)
        if before_commit is not None:
            before_commit()
    return counts
