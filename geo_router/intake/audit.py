"""The audit trail: who read registry data, changed keys or the city, or was refused, and why.

:class:`AuditService` is the one way anything is audited. Each call names an action and a
purpose (one vocabulary, ``store.schema.AUDIT_ACTIONS`` and ``AUDIT_PURPOSES``), the actor
(a key's name and id) and the subjects as ids: ``subscriber:ID``, ``phone_hash:HMAC``,
``key:ID``, ``report:ID``, ``layer:NAME``, ``facility:TYPE``. A phone number, a name or an
address never goes in. Records are chained by ``store.audit_repo``; :meth:`AuditService.verify`
walks the chain.

When the audit log cannot be written, the caller decides: a read of registry data for display
fails closed (``fail_closed=True`` raises ``AuditUnavailableError``, a 503), while emergency
work (locating a report at a registered caller's home) and everything else goes on and hands
its record to the *fallback*, a callable taking the record. The default fallback is
:class:`SpoolFile`, an fsynced JSON-lines file in the data dir whose records are chained, in
order and exactly once (records carry an id), as soon as the database takes appends again.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson

from geo_router.errors import AuditUnavailableError
from geo_router.intake.audit_queue import AuditQueue
from geo_router.store.audit_repo import (
    GENESIS_HASH,
    AuditRecord,
    AuditRepo,
    StoredAuditRecord,
    chain_hash,
)
from geo_router.store.schema import AuditAction, AuditPurpose, new_uuid, utcnow

if TYPE_CHECKING:
    from geo_router.store.database import Store

__all__ = [
    "SPOOL_FILE_NAME",
    "AuditFallback",
    "AuditRecord",
    "AuditService",
    "ChainCheck",
    "SpoolFile",
    "Who",
    "audited_swap",
    "phone_subject",
]

log = logging.getLogger(__name__)

#: The default fallback's file, in the data dir.
SPOOL_FILE_NAME = "audit-spool.jsonl"

#: Where a record goes when the audit log cannot take it (the spool, or the journal).
AuditFallback = Callable[[AuditRecord], None]


class Who(Protocol):
    """Who acts: an API key record, the open-mode principal, a ``ServiceActor``."""

    @property
    def id(self) -> str:
        """The key's id."""
        ...

    @property
    def name(self) -> str:
        """The key's name."""
        ...


@runtime_checkable
class _Drainable(Protocol):
    def has_pending(self) -> bool: ...

    def drain(self, sink: Callable[[Sequence[AuditRecord]], object]) -> int: ...


def phone_subject(phone_hash: str) -> str:
    """The subject id of an unregistered phone number: a digest of its keyed hash, never the
    number, and not the hash itself, so that erasing the number (which removes every copy of
    its hash) leaves no row matching it; an auditor with the pepper still derives it."""
    return "phone_ref:" + hashlib.sha256(phone_hash.encode("ascii")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What :meth:`AuditService.verify` found: the count, or the first bad record and why."""

    count: int
    first_bad_seq: int | None = None
    reason: str | None = None

    @property
    def intact(self) -> bool:
        """Whether every record is present, in order and unchanged."""
        return self.first_bad_seq is None


class SpoolFile:
    """The default fallback: an append-only, fsynced JSON-lines file (mode 0600).

    Several processes may spool and drain at once: both take an exclusive ``flock``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __call__(self, record: AuditRecord) -> None:
        """Append one record and fsync it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps(record.to_dict()) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock

    def has_pending(self) -> bool:
        """Whether records wait in the file (one ``stat``)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def drain(self, sink: Callable[[Sequence[AuditRecord]], object]) -> int:
        """Hand every spooled record to ``sink`` in order, then empty the file.

        When ``sink`` raises, the file is kept as it is (records are replayed later; their ids
        make a second replay of a record a no-op). A torn last line (a crash while writing)
        is skipped with a warning. Returns how many records were handed over.
        """
        if not self.has_pending():
            return 0
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "rb") as handle:
                records = list(_parse_spool(handle.read().splitlines(), self.path))
            if records:
                sink(records)
            os.ftruncate(fd, 0)
            os.fsync(fd)
            return len(records)
        finally:
            os.close(fd)


def _parse_spool(lines: Iterable[bytes], path: Path) -> Iterator[AuditRecord]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield AuditRecord.from_dict(orjson.loads(line))
        except (ValueError, KeyError, TypeError):
            log.warning("skipping unreadable line %d of audit spool %s", number, path)


class AuditService:
    """Record audited events in the hash chain; verify, tail and export it.

    Parameters
    ----------
    repo
        The audit log's repository.
    fallback
        Takes a record the log cannot take (``fail_closed=False`` calls only); None drops it
        with an error in the log. When it also has ``has_pending()`` and ``drain(sink)``
        (:class:`SpoolFile`), its records are chained before the next record.
    clock
        Returns the current UTC time.
    """

    def __init__(
        self,
        repo: AuditRepo,
        *,
        fallback: AuditFallback | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repo = repo
        self.fallback = fallback
        self.clock = clock
        self._queue: AuditQueue | None = None
        self._queue_lock = threading.Lock()

    @classmethod
    def for_store(
        cls, store: Store, data_dir: Path, *, fallback: AuditFallback | None = None
    ) -> AuditService:
        """The audit service of ``store``; the fallback defaults to a :class:`SpoolFile` in
        ``data_dir``."""
        return cls(
            AuditRepo(store.engine),
            fallback=fallback if fallback is not None else SpoolFile(data_dir / SPOOL_FILE_NAME),
        )

    def record(
        self,
        action: AuditAction,
        purpose: AuditPurpose,
        who: Who | None,
        subjects: Iterable[str] = (),
        detail: dict[str, Any] | None = None,
        *,
        fail_closed: bool,
    ) -> AuditRecord:
        """Append one record to the chain.

        Parameters
        ----------
        action, purpose
            From the vocabulary in ``store.schema``.
        who
            The actor (its ``name`` and ``id``); None for an unidentified caller.
        subjects
            Ids of what was touched (never a number, a name or an address).
        detail
            Small plain JSON data (status, route template, versions).
        fail_closed
            When the log cannot be written: raise ``AuditUnavailableError`` (True: the
            caller must not go on), or hand the record to the fallback (False).
        """
        record = self._make(action, purpose, who, subjects, detail)
        if fail_closed:
            try:
                self._replay_quietly()
                self.repo.append([record])
            except AuditUnavailableError as exc:
                raise AuditUnavailableError(
                    "the audit log cannot be written, so registry data is not shown "
                    "(try again when the database is back)",
                    detail={"audit": "unavailable"},
                ) from exc
        else:
            self.store_batch([record])
        return record

    def submit(
        self,
        action: AuditAction,
        purpose: AuditPurpose,
        who: Who | None,
        subjects: Iterable[str] = (),
        detail: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """:meth:`record` without waiting (fail safe): the record is written by a background
        thread, in batches (:class:`~.audit_queue.AuditQueue`). For the event loop and for
        records an attacker can multiply (refused requests)."""
        record = self._make(action, purpose, who, subjects, detail)
        if self._queue is None:
            with self._queue_lock:
                if self._queue is None:
                    self._queue = AuditQueue(self.store_batch, _summary)
        self._queue.submit(record)
        return record

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted record is written (or given to the fallback)."""
        return True if self._queue is None else self._queue.flush(timeout)

    def close(self) -> None:
        """Write what was submitted (at shutdown)."""
        self.flush()

    def store_batch(self, records: Sequence[AuditRecord]) -> None:
        """Append ``records`` in order; whatever the log cannot take goes to the fallback.

        Never raises: the work being audited goes on.
        """
        try:
            self._replay_quietly()
            self.repo.append(records)
        except Exception as exc:  # fail safe: database errors and bugs alike
            self._fall_back(records, exc)

    def _make(
        self,
        action: AuditAction,
        purpose: AuditPurpose,
        who: Who | None,
        subjects: Iterable[str],
        detail: dict[str, Any] | None,
    ) -> AuditRecord:
        return AuditRecord(
            record_id=new_uuid(),
            at=self.clock(),
            actor="anonymous" if who is None else str(who.name),
            key_id=None if who is None else str(who.id),
            action=action,
            purpose=purpose,
            subjects=tuple(subjects),
            detail=dict(detail or {}),
        )

    def _replay_quietly(self) -> None:
        """Chain what the fallback holds first (keeps the order); a failure to read it is
        logged, never raised (the database being down raises ``AuditUnavailableError``)."""
        try:
            self.replay_pending()
        except AuditUnavailableError:
            raise
        except Exception:
            log.exception("could not replay the audit fallback's records")

    def _fall_back(self, records: Sequence[AuditRecord], exc: Exception) -> None:
        actions = ", ".join(sorted({r.action for r in records}))
        if self.fallback is None:
            log.error("%d audit records (%s) lost: %s, no fallback", len(records), actions, exc)
            return
        try:
            for record in records:
                self.fallback(record)
        except Exception:  # the work it audits goes on: an emergency is never refused
            log.exception("audit records (%s) lost: their fallback failed too", actions)
        else:
            log.warning(
                "audit log unavailable (%s): %d records (%s) kept by the fallback",
                exc,
                len(records),
                actions,
            )

    def replay(self, records: Sequence[AuditRecord]) -> int:
        """Chain records kept elsewhere (spool, journal) in order; already chained ids are
        skipped. Returns how many were new. Raises ``AuditUnavailableError``."""
        return len(self.repo.append(records))

    def replay_pending(self) -> int:
        """Chain what the fallback holds, if it can be drained; how many records it held."""
        fallback = self.fallback
        if isinstance(fallback, _Drainable) and fallback.has_pending():
            return fallback.drain(self.replay)
        return 0

    def verify(self) -> ChainCheck:
        """Walk the chain: the count when intact, else the first bad sequence number."""
        expected, prev, count = 1, GENESIS_HASH, 0
        for stored in self.repo.records():
            problem = _link_problem(stored, expected, prev)
            if problem is not None:
                return ChainCheck(count, *problem)
            count, expected, prev = count + 1, stored.seq + 1, stored.hash
        head = self.repo.head()
        if head.seq != count or head.hash != prev:
            return ChainCheck(
                count,
                count + 1,
                f"the chain ends at record {count} but its head row names record {head.seq}: "
                "the newest records were removed or the head was changed",
            )
        return ChainCheck(count)

    def tail(self, n: int = 20) -> list[StoredAuditRecord]:
        """The newest ``n`` records, oldest first."""
        return self.repo.last(n)

    def export(self, after_seq: int = 0) -> Iterator[StoredAuditRecord]:
        """Every record after ``after_seq``, in order."""
        return self.repo.records(after_seq)


def _summary(example: AuditRecord, dropped: int) -> AuditRecord:
    """One record standing for ``dropped`` records like ``example`` that a full queue lost."""
    return AuditRecord(
        record_id=new_uuid(),
        at=example.at,
        actor="audit-queue",
        key_id=None,
        action=example.action,
        purpose=example.purpose,
        detail={"suppressed": dropped},
    )


def _link_problem(stored: StoredAuditRecord, expected: int, prev: str) -> tuple[int, str] | None:
    """Why ``stored`` does not continue the chain at ``expected`` after ``prev``, if it does not."""
    if stored.seq != expected:
        return expected, f"record {expected} is missing (the next stored record is {stored.seq})"
    if chain_hash(stored.seq, stored.record, stored.prev_hash) != stored.hash:
        return stored.seq, f"record {stored.seq} was modified (its hash does not match)"
    if stored.prev_hash != prev:
        return stored.seq, (
            f"record {stored.seq} does not follow record {stored.seq - 1} "
            "(a record was changed, removed or reordered)"
        )
    return None


class _Swappable(Protocol):
    """What ``audited_swap`` swaps: ``city.router.Router``."""

    @property
    def snapshot(self) -> Any: ...

    def swap(self, new_snapshot: Any) -> Any: ...


def audited_swap(router: _Swappable, new_snapshot: Any, *, audit: AuditService, who: Who) -> Any:
    """Swap the router's city and audit every layer and facility set whose version changed.

    Nothing changes layers or facilities at runtime yet; a reload (CLI or API) calls this
    instead of ``Router.swap``. The records never block the swap (they go to the fallback
    when the log is down). Returns the previous snapshot.
    """
    old = router.snapshot
    previous = router.swap(new_snapshot)
    changes: tuple[tuple[AuditAction, str, set[str]], ...] = (
        ("layer_change", "layer", set(old.layers) | set(new_snapshot.layers)),
        ("facility_change", "facility", set(old.facilities) | set(new_snapshot.facilities)),
    )
    for action, kind, names in changes:
        changed = {
            name: [old.versions.get(name), new_snapshot.versions.get(name)]
            for name in sorted(names)
            if old.versions.get(name) != new_snapshot.versions.get(name)
        }
        if changed:
            audit.record(
                action,
                "city_maintenance",
                who,
                [f"{kind}:{name}" for name in changed],
                {"versions": changed},
                fail_closed=False,
            )
    return previous
