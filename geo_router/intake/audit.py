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
its record to the *fallback*, a callable taking the record. The fallback is the local journal
(``geo_router.journal``): :meth:`AuditService.for_store` with a journal appends such records
there (kind :data:`AUDIT_KIND`, keyed by record id) and registers the replayer that chains
them, exactly once (records carry an id), when the journal is replayed: by the app's replay
loop, by ``geo-router audit replay``, and by this service before its next append. Without a
journal a record the log cannot take is lost, with an error in the log.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from geo_router.errors import AuditUnavailableError, StoreUnavailableError
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
    from geo_router.journal import Journal
    from geo_router.store.database import Store

__all__ = [
    "AUDIT_KIND",
    "AuditFallback",
    "AuditRecord",
    "AuditService",
    "ChainCheck",
    "Who",
    "audited_swap",
    "phone_subject",
]

log = logging.getLogger(__name__)

#: The journal kind of an audit record waiting for the audit log.
AUDIT_KIND = "audit"

#: Where a record goes when the audit log cannot take it (the journal; tests pass others).
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


class AuditService:
    """Record audited events in the hash chain; verify, tail and export it.

    Parameters
    ----------
    repo
        The audit log's repository.
    fallback
        Takes a record the log cannot take (``fail_closed=False`` calls only); None drops it
        with an error in the log. :meth:`use_journal` makes the journal the fallback.
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
        self.journal: Journal | None = None
        self._journal_may_hold = False  # whether journaled records may wait (replay first)
        self._queue: AuditQueue | None = None
        self._queue_lock = threading.Lock()

    @classmethod
    def for_store(cls, store: Store, *, journal: Journal | None = None) -> AuditService:
        """The audit service of ``store``, keeping what its log cannot take in ``journal``
        (see :meth:`use_journal`); without one such records are lost (logged)."""
        audit = cls(AuditRepo(store.engine))
        if journal is not None:
            audit.use_journal(journal)
        return audit

    def use_journal(self, journal: Journal) -> None:
        """Keep records the log cannot take in ``journal`` (kind :data:`AUDIT_KIND`, keyed by
        record id) and register the replayer that chains them when it is replayed."""

        def keep(record: AuditRecord) -> None:
            journal.append(AUDIT_KIND, record.to_dict(), keys=(record.record_id,))

        journal.register(AUDIT_KIND, self.chain_journaled)
        self.journal = journal
        self.fallback = keep
        self._journal_may_hold = True  # an earlier run or another process may have left some

    def chain_journaled(self, payload: dict[str, Any]) -> None:
        """The journal's replayer of :data:`AUDIT_KIND`: chain one kept record (skipped when
        its id is chained already).

        Raises
        ------
        StoreUnavailableError
            The log still cannot take it: the journal keeps it and retries later.
        """
        try:
            self.repo.append([AuditRecord.from_dict(payload)])
        except AuditUnavailableError as exc:
            raise StoreUnavailableError(
                f"{exc.message}: the journaled audit record waits",
                detail={"reason": "audit log unavailable"},
            ) from exc

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
        """Chain the journal's audit records first, so the chain keeps their order.

        Raises ``AuditUnavailableError`` when the log cannot take them (the new record then
        need not wait for the database a second time); any other failure is logged, never
        raised (what is not chained yet stays in the journal for its replay loop).
        """
        journal = self.journal
        if journal is None or not self._journal_may_hold:
            return
        try:
            result = journal.replay(kinds=(AUDIT_KIND,))
        except Exception:
            log.exception("could not replay the audit records kept in the journal")
            return
        # Busy: another thread or process replays them now; unavailable: the log is down.
        self._journal_may_hold = result.busy or result.store_unavailable
        if result.store_unavailable:
            raise AuditUnavailableError("the audit log cannot be written (journal replay)")

    def _fall_back(self, records: Sequence[AuditRecord], exc: Exception) -> None:
        actions = ", ".join(sorted({r.action for r in records}))
        if self.fallback is None:
            log.error("%d audit records (%s) lost: %s, no fallback", len(records), actions, exc)
            return
        try:
            for record in records:
                self.fallback(record)
            self._journal_may_hold = True
        except Exception:  # the work it audits goes on: an emergency is never refused
            log.exception("audit records (%s) lost: their fallback failed too", actions)
        else:
            log.warning(
                "audit log unavailable (%s): %d records (%s) kept by the fallback",
                exc,
                len(records),
                actions,
            )

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
    instead of ``Router.swap``. The records never block the swap (they go to the journal
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
