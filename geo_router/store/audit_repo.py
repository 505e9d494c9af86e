"""The audit trail in the store: every SQL statement of the hash-chained ``audit_log``.

Each stored record carries the hash of the record before it (``prev_hash``) and its own
hash over its sequence number, its fields and ``prev_hash`` (:func:`chain_hash`), so editing,
removing or reordering a record breaks the chain from there on. Appends are serialized by a
lock on the one ``audit_head`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the
write lock ``BEGIN IMMEDIATE`` takes), so several workers and processes never fork the chain.
The head row also remembers the last sequence number and hash, so removing the newest
records is noticed too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from geo_router.errors import AuditUnavailableError
from geo_router.store.engine import write_transaction
from geo_router.store.schema import audit_head, audit_log

__all__ = [
    "GENESIS_HASH",
    "AuditRecord",
    "AuditRepo",
    "AuditUnavailableError",
    "ChainHead",
    "StoredAuditRecord",
    "chain_hash",
]

#: ``prev_hash`` of the first record.
GENESIS_HASH = "0" * 64
#: Records read per query while walking the chain.
_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited event, before it is chained. Never holds a number, name or address.

    ``subjects`` are ids (``subscriber:ID``, ``phone_ref:DIGEST``, ``key:ID``, ``report:ID``,
    ``layer:NAME``); ``detail`` is small plain JSON data (status, route template, versions).
    """

    record_id: str
    at: datetime
    actor: str
    key_id: str | None
    action: str
    purpose: str
    subjects: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for the journal); :meth:`from_dict` reads it back."""
        return {
            "record_id": self.record_id,
            "at": self.at.astimezone(UTC).isoformat(),
            "actor": self.actor,
            "key_id": self.key_id,
            "action": self.action,
            "purpose": self.purpose,
            "subjects": list(self.subjects),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        """The record :meth:`to_dict` wrote."""
        return cls(
            record_id=str(data["record_id"]),
            at=datetime.fromisoformat(str(data["at"])).astimezone(UTC),
            actor=str(data["actor"]),
            key_id=None if data.get("key_id") is None else str(data["key_id"]),
            action=str(data["action"]),
            purpose=str(data["purpose"]),
            subjects=tuple(str(s) for s in data.get("subjects", ())),
            detail=dict(data.get("detail") or {}),
        )


@dataclass(frozen=True, slots=True)
class StoredAuditRecord:
    """A record as chained: its sequence number, the previous record's hash and its own."""

    seq: int
    record: AuditRecord
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last sequence number and hash the head row remembers (0 and genesis when empty)."""

    seq: int
    hash: str


def chain_hash(seq: int, record: AuditRecord, prev_hash: str) -> str:
    """The sha256 of a record at ``seq`` after ``prev_hash`` (canonical JSON, sorted keys)."""
    payload = {"seq": seq, "prev_hash": prev_hash, **record.to_dict()}
    # Timestamps are hashed at microsecond precision in UTC, as both backends store them.
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _stored(row: sa.Row[Any]) -> StoredAuditRecord:
    record = AuditRecord(
        record_id=row.record_id,
        at=row.at,
        actor=row.actor,
        key_id=row.key_id,
        action=row.action,
        purpose=row.purpose,
        subjects=tuple(row.subjects or ()),
        detail=dict(row.detail or {}),
    )
    return StoredAuditRecord(row.seq, record, row.prev_hash, row.hash)


class AuditRepo:
    """Append to and read the hash-chained audit log.

    Parameters
    ----------
    engine
        The store's engine (migration ``0007_audit_log`` applied).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def append(self, records: Sequence[AuditRecord]) -> list[int]:
        """Chain ``records`` after the head, in order, in one transaction.

        A record whose ``record_id`` is already chained is skipped (replays are idempotent).
        Returns the sequence numbers given to the new records.

        Raises
        ------
        AuditUnavailableError
            The database could not take the records (nothing was appended).
        """
        try:
            with write_transaction(self.engine) as conn:
                return self._append(conn, records)
        except sa.exc.SQLAlchemyError as exc:
            raise AuditUnavailableError(
                f"the audit log cannot be written ({type(exc).__name__})"
            ) from exc

    def _append(self, conn: sa.Connection, records: Sequence[AuditRecord]) -> list[int]:
        head = conn.execute(
            sa.select(audit_head.c.seq, audit_head.c.hash)
            .where(audit_head.c.id == 1)
            .with_for_update()
        ).one()
        seq, prev = int(head.seq), str(head.hash)
        ids = [r.record_id for r in records]
        known = set(
            conn.execute(
                sa.select(audit_log.c.record_id).where(audit_log.c.record_id.in_(ids))
            ).scalars()
        )
        added: list[int] = []
        rows = []
        for record in records:
            if record.record_id in known:
                continue
            known.add(record.record_id)
            seq += 1
            digest = chain_hash(seq, record, prev)
            rows.append(
                {
                    "seq": seq,
                    **record.to_dict(),
                    "at": record.at,
                    "subjects": list(record.subjects),
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            added.append(seq)
            prev = digest
        if rows:
            conn.execute(audit_log.insert(), rows)
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=prev))
        return added

    def head(self) -> ChainHead:
        """What the head row remembers."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            ).first()
        return ChainHead(0, GENESIS_HASH) if row is None else ChainHead(int(row.seq), row.hash)

    def records(self, after_seq: int = 0) -> Iterator[StoredAuditRecord]:
        """Every record after ``after_seq``, in sequence order, read in chunks."""
        last = after_seq
        while True:
            query = (
                sa.select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq)
            ).limit(_CHUNK)
            with self.engine.connect() as conn:
                chunk = [_stored(row) for row in conn.execute(query)]
            yield from chunk
            if len(chunk) < _CHUNK:
                return
            last = chunk[-1].seq

    def last(self, n: int) -> list[StoredAuditRecord]:
        """The newest ``n`` records, oldest first."""
        query = sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(max(0, n))
        with self.engine.connect() as conn:
            return [_stored(row) for row in conn.execute(query)][::-1]

    def count(self) -> int:
        """How many records are stored."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one())
