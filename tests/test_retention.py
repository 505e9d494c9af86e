"""Retention: personal fields of reports are erased after the configured days (fake clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from geo_router.intake.locate import Locator
from geo_router.intake.reports.models import ServiceActor
from geo_router.intake.reports.retention import purge_expired_reports
from geo_router.intake.reports.service import ReportService
from geo_router.intake.secrets import Secrets
from geo_router.settings import IntakeSettings
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.subscribers_repo import SubscribersRepo

CALL = ServiceActor(id="k-call", name="call", role="intake", channel="call")
T0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_purge_after_the_retention(migrated_engine: Any, demo_router: Any) -> None:
    clock = Clock()
    repo = ReportsRepo(migrated_engine)
    intake = ReportService(
        repo,
        Locator(SubscribersRepo(migrated_engine), None),
        demo_router,
        Secrets.generate(),
        clock=clock,
    )
    point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
    body = {
        "category": "waste",
        "reporter_phone": "+6281234567890",
        "description": "Pak Budi",
        "location": {"lon": point.x, "lat": point.y},
    }
    first = intake.create(body, actor=CALL)
    clock.now = T0 + timedelta(days=20)
    second = intake.create(body, actor=CALL)

    clock.now = T0 + timedelta(days=29)
    assert purge_expired_reports(repo, 30, clock=clock).erased.reports == 0
    clock.now = T0 + timedelta(days=31)
    run = purge_expired_reports(repo, 30, clock=clock)
    assert run.cutoff == T0 + timedelta(days=1)
    assert run.to_dict() == {
        "retention_days": 30,
        "cutoff": "2026-01-11T08:00:00+00:00",
        "reports_erased": 1,
        "idempotency_keys_deleted": 0,
    }
    assert purge_expired_reports(repo, 30, clock=clock).erased.reports == 0  # idempotent
    gone, kept = intake.get(first.id, actor=CALL), intake.get(second.id, actor=CALL)
    assert gone.reporter_phone_hash is None and gone.description is None
    assert gone.zones == first.zones and gone.category == "waste"
    assert kept.reporter_phone_hash is not None and kept.description == "Pak Budi"

    clock.now = T0 + timedelta(days=10_000)
    forever = purge_expired_reports(repo, 0, clock=clock)  # 0 keeps everything
    assert forever.cutoff is None and forever.erased.reports == 0
    assert intake.get(second.id, actor=CALL).description == "Pak Budi"
    with pytest.raises(ValueError):
        purge_expired_reports(repo, -1, clock=clock)


def test_retention_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IntakeSettings().report_retention_days == 365
    monkeypatch.setenv("GEO_ROUTER_REPORT_RETENTION_DAYS", "0")
    assert IntakeSettings().report_retention_days == 0
    monkeypatch.setenv("GEO_ROUTER_REPORT_RETENTION_DAYS", "-1")
    with pytest.raises(ValueError):
        IntakeSettings()
