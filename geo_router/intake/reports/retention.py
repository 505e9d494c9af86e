"""Retention: a report's personal fields are erased once it has been left alone long enough.

``GEO_ROUTER_REPORT_RETENTION_DAYS`` (``IntakeSettings.report_retention_days``, default 365;
0 keeps everything) counts from a report's last change. What is personal and what stays for
statistics is listed once, in ``geo_router.store.schema.REPORT_PERSONAL_COLUMNS``; the
erasure itself is :func:`geo_router.store.erasure.purge_reports`. ``geo-router reports
purge`` runs it (from cron, a systemd timer or by hand: it is idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from geo_router.store.erasure import ErasedReports, purge_reports
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.schema import utcnow

__all__ = ["RetentionRun", "purge_expired_reports"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """One purge: the retention applied, its cutoff (None: kept forever) and what it erased."""

    retention_days: int
    cutoff: datetime | None
    erased: ErasedReports

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (what the command prints)."""
        return {
            "retention_days": self.retention_days,
            "cutoff": None if self.cutoff is None else self.cutoff.isoformat(),
            "reports_erased": self.erased.reports,
            "idempotency_keys_deleted": self.erased.idempotency_keys,
        }


def purge_expired_reports(
    reports: ReportsRepo, retention_days: int, *, clock: Callable[[], datetime] = utcnow
) -> RetentionRun:
    """Erase the personal fields of reports last changed more than ``retention_days`` ago.

    Parameters
    ----------
    reports
        The reports' repository.
    retention_days
        Days to keep personal fields; 0 keeps them forever (nothing is erased).
    clock
        The current UTC time (tests pass a fake).
    """
    if retention_days < 0:
        raise ValueError(f"retention_days must be 0 or more, got {retention_days}")
    if retention_days == 0:
        return RetentionRun(0, None, ErasedReports(0, 0))
    cutoff = clock() - timedelta(days=retention_days)
    erased = purge_reports(reports.engine, before=cutoff)
    log.info(
        "retention %d days: erased the personal fields of %d reports",
        retention_days,
        erased.reports,
    )
    return RetentionRun(retention_days, cutoff, erased)
