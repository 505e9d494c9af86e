"""Emergency reports kept in the local journal while the store is unavailable.

When the database cannot take a report (``StoreUnavailableError``), an emergency report,
located and routed from memory, is journaled here (kind ``"report"``) and answered 202 with
its id. Until the journal is replayed into the store, the report is read from here with the
status ``pending_store`` (:data:`~geo_router.store.schema.PENDING_STORE`). Each record is
found by the report's id and by its Idempotency-Key, so a retried request is answered with
the same report instead of a second one; :func:`report_replayer` stores each record exactly
once (insert by id, skip when present).

An emergency that only the caller registry could locate (a phone number, no point, no
address) while the registry is unreachable is still taken: answered with its category's
agency, journaled unlocated (:func:`unlocated_decision`) and located and routed from the
registry when it is replayed (``ReportService.locate_journaled``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from geo_router.city.models import CategoryRoute
from geo_router.encoding.json import category_dict
from geo_router.journal import Journal, JournalRecord, Replayer
from geo_router.store.reports_repo import IdempotencyEntry, Report, ReportsRepo, StoredAnswer
from geo_router.store.schema import PENDING_STORE

__all__ = [
    "LOCATE_ON_REPLAY",
    "REPORT_KIND",
    "PendingReports",
    "needs_locating",
    "report_replayer",
    "unlocated_decision",
]

log = logging.getLogger(__name__)

#: The journal kind of a report waiting for the store.
REPORT_KIND = "report"
#: The decision's mark of a report to locate from the registry when it is replayed.
LOCATE_ON_REPLAY = "locate_on_replay"


def unlocated_decision(
    category: CategoryRoute, versions: Mapping[str, str], request_id: str | None
) -> dict[str, Any]:
    """The decision of an emergency taken before it could be located: its category and
    agency now, its zones and responders when the registry answers again."""
    return {
        "request_id": request_id,
        "category": category_dict(category),
        "agency": category.agency,
        "versions": dict(versions),
        "location": {"source": "registered_caller", "confidence": None, "label": None},
        "flags": [],
        LOCATE_ON_REPLAY: True,
    }


def needs_locating(report: Report) -> bool:
    """Whether ``report`` was journaled unlocated (see :func:`unlocated_decision`)."""
    return bool(report.decision.get(LOCATE_ON_REPLAY))


def _idempotency_id(owner: str, key: str) -> str:
    """The journal key of an Idempotency-Key (scoped to its API key, as in the store)."""
    return f"idempotency:{owner}:{key}"


def _entry_dict(entry: IdempotencyEntry) -> dict[str, str]:
    return {
        "key": entry.key,
        "owner": entry.owner,
        "request_hash": entry.request_hash,
        "expired_before": entry.expired_before.isoformat(),
    }


def _entry(data: dict[str, Any] | None) -> IdempotencyEntry | None:
    if data is None:
        return None
    return IdempotencyEntry(
        data["key"],
        data["owner"],
        data["request_hash"],
        datetime.fromisoformat(data["expired_before"]),
    )


def _pending_report(record: JournalRecord) -> Report:
    """The journaled report as readers see it: status ``pending_store``."""
    report = Report.from_dict(record.payload["report"])
    return dataclasses.replace(report, status=PENDING_STORE)


@dataclass(frozen=True, slots=True)
class PendingReports:
    """Reports in the journal, waiting for the store.

    Parameters
    ----------
    journal
        The service's journal.
    """

    journal: Journal

    def add(self, report: Report, *, actor: str, idempotency: IdempotencyEntry | None) -> Report:
        """Journal ``report`` (fsynced) and return it with status ``pending_store``.

        With an Idempotency-Key already journaled, nothing is written and the report
        journaled first is returned (the caller compares request hashes through
        :meth:`answer` first).

        Raises
        ------
        JournalUnavailableError
            The journal cannot be written either.
        """
        keys = [report.id]
        if idempotency is not None:
            keys.append(_idempotency_id(idempotency.owner, idempotency.key))
        payload = {
            "report": report.to_dict(),
            "actor": actor,
            "idempotency": None if idempotency is None else _entry_dict(idempotency),
        }
        record, appended = self.journal.append(REPORT_KIND, payload, keys=tuple(keys))
        if appended:
            log.warning(
                "store unavailable: emergency report %s journaled (pending_store)", report.id
            )
        return _pending_report(record)

    def get(self, report_id: str) -> Report | None:
        """The journaled report ``report_id`` (status ``pending_store``), if pending."""
        record = self.journal.find(REPORT_KIND, report_id)
        return None if record is None else _pending_report(record)

    def answer(self, entry: IdempotencyEntry) -> StoredAnswer | None:
        """The journaled answer for an Idempotency-Key, with the hash of its request."""
        record = self.journal.find(REPORT_KIND, _idempotency_id(entry.owner, entry.key))
        if record is None:
            return None
        first = record.payload.get("idempotency") or {}
        return StoredAnswer(str(first.get("request_hash", "")), _pending_report(record))


def report_replayer(
    reports: ReportsRepo, complete: Callable[[Report], Report] | None = None
) -> Replayer:
    """The replayer of journaled reports: each inserted once, with its Idempotency-Key.

    A report already in the store (a replay interrupted before its record was marked) is
    skipped. ``complete`` finishes a report before it is stored (the service's
    ``locate_journaled``: an unlocated one is located and routed). ``StoreUnavailableError``
    passes through: the journal retries later; so does any error of ``complete`` (the city
    still loading, say), which leaves the record pending for the next round.
    """

    def store(payload: dict[str, Any]) -> None:
        report = Report.from_dict(payload["report"])
        if reports.get(report.id) is not None:
            return
        if complete is not None:
            report = complete(report)
        entry = _entry(payload.get("idempotency"))
        actor = str(payload.get("actor") or "system")
        if not reports.insert(report, actor=actor, idempotency=entry):
            # Only when the store answered the same key meanwhile (a report filed while the
            # journal was unreadable to that process): the store's report is the answer.
            log.warning(
                "journaled report %s not stored: its Idempotency-Key names another report",
                report.id,
            )

    return store
