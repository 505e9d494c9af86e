"""Emergency reports journaled while the store is unavailable, and their exactly-once replay."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from geo_router.errors import (
    IdempotencyConflictError,
    NotFoundError,
    StoreUnavailableError,
)
from geo_router.intake.locate import Locator
from geo_router.intake.reports.models import ReportInput, ServiceActor
from geo_router.intake.reports.pending import REPORT_KIND, PendingReports, report_replayer
from geo_router.intake.reports.service import ReportService
from geo_router.intake.secrets import Secrets
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.journal import Journal
from geo_router.store import make_engine, upgrade
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.schema import PENDING_STORE, REPORT_STATES, STATUSES, idempotency_keys
from geo_router.store.subscribers_repo import SubscribersRepo

CALL = ServiceActor(id="k-call", name="call desk", role="intake", channel="call")
SMS = ServiceActor(id="k-sms", name="sms gateway", role="intake", channel="sms")
SECRETS = Secrets.generate()
HOME_NUMBER = "+6281234567890"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(tmp_path / "journal.bin", SECRETS, preallocate_bytes=64 * 1024)
    yield journal
    journal.close()


@pytest.fixture
def down_engine() -> Iterator[sa.Engine]:
    """An engine whose server is down: every statement raises StoreUnavailableError."""
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{_closed_port()}/gone")
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _service(engine: sa.Engine, city: Any, journal: Journal | None) -> ReportService:
    return ReportService(
        ReportsRepo(engine),
        Locator(SubscribersRepo(engine), None),
        city,
        SECRETS,
        pending=PendingReports(journal) if journal is not None else None,
    )


def _payload(city: Any, category: str = "fire", **extra: Any) -> dict[str, Any]:
    point = city.snapshot.layers["kelurahan"].geometries[0].representative_point()
    return {"category": category, "location": {"lon": point.x, "lat": point.y}, **extra}


def test_pending_store_is_a_state_answered_never_a_stored_status() -> None:
    assert PENDING_STORE in REPORT_STATES and PENDING_STORE not in STATUSES


def test_database_down_emergency_routed_from_memory_and_journaled(
    demo_router: Any, down_engine: sa.Engine, journal: Journal
) -> None:
    service = _service(down_engine, demo_router, journal)
    filed = service.file(ReportInput.parse(_payload(demo_router)), actor=CALL)
    assert filed.pending and filed.report.status == PENDING_STORE
    assert filed.view["status"] == PENDING_STORE
    assert filed.report.zones and filed.report.decision["category"]["emergency"] is True
    assert journal.pending_count() == 1
    assert service.get(filed.report.id, actor=CALL).status == PENDING_STORE
    with pytest.raises(StoreUnavailableError):
        service.get(filed.report.id, actor=SMS)  # another channel's: not shown from the journal
    with pytest.raises(StoreUnavailableError, match="unavailable"):
        service.file(ReportInput.parse(_payload(demo_router, "waste")), actor=CALL)
    assert journal.pending_count() == 1


def test_without_a_journal_an_emergency_gets_the_outage_error(
    demo_router: Any, down_engine: sa.Engine
) -> None:
    with pytest.raises(StoreUnavailableError):
        _service(down_engine, demo_router, None).file(
            ReportInput.parse(_payload(demo_router)), actor=CALL
        )


def test_idempotency_key_holds_in_the_journal(
    demo_router: Any, down_engine: sa.Engine, journal: Journal
) -> None:
    service = _service(down_engine, demo_router, journal)
    body = ReportInput.parse(_payload(demo_router, description="rumah terbakar"))
    first = service.file(body, actor=CALL, idempotency_key="k-1")
    again = service.file(body, actor=CALL, idempotency_key="k-1")
    assert again.report.id == first.report.id and again.pending
    assert journal.pending_count() == 1
    other = ReportInput.parse(_payload(demo_router, description="lain"))
    with pytest.raises(IdempotencyConflictError):
        service.file(other, actor=CALL, idempotency_key="k-1")
    sms = service.file(body, actor=SMS, idempotency_key="k-1")
    assert sms.report.id != first.report.id  # keys are scoped to their API key


def test_a_phone_only_emergency_is_taken_unlocated_and_located_when_replayed(
    demo_router: Any,
    down_engine: sa.Engine,
    sqlite_engine: sa.Engine,
    journal: Journal,
) -> None:
    point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
    registry = SubscriberService(
        SubscribersRepo(sqlite_engine), ReportsRepo(sqlite_engine), SECRETS, demo_router, None
    )
    registry.create(HOME_NUMBER, lon=point.x, lat=point.y)
    offline = _service(down_engine, demo_router, journal)  # the registry is unreachable
    home = offline.file(
        ReportInput.parse({"category": "fire", "reporter_phone": HOME_NUMBER}), actor=CALL
    )
    stranger = offline.file(
        ReportInput.parse({"category": "medical", "reporter_phone": "+6281399998888"}), actor=CALL
    )
    for filed in (home, stranger):
        assert filed.pending and filed.report.lon is None and filed.report.zones == {}
        assert (
            filed.view["decision"]["agency"] == demo_router.category(filed.report.category).agency
        )
    analyst = ServiceActor(id="k-an", name="analyst", role="analyst")
    assert offline.view(home.report, analyst)["lon"] is None  # nothing to hide yet

    online = _service(sqlite_engine, demo_router, journal)
    journal.register(
        REPORT_KIND, report_replayer(ReportsRepo(sqlite_engine, SECRETS), online.locate_journaled)
    )
    assert journal.replay().replayed == 2
    stored = online.get(home.report.id, actor=CALL)
    assert stored.status == "open" and stored.location_source == "registered_caller"
    assert (stored.lon, stored.lat) == pytest.approx((point.x, point.y))
    assert stored.zones and stored.decision["responders"]
    assert "locate_on_replay" not in stored.decision
    unknown = online.get(stranger.report.id, actor=CALL)  # not registered: kept, flagged
    assert unknown.lon is None and "unregistered_caller" in unknown.flags


def test_disk_full_still_locates_from_the_registry_and_replays_exactly_once(
    demo_router: Any, sqlite_engine: sa.Engine, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
    registry = SubscriberService(
        SubscribersRepo(sqlite_engine), ReportsRepo(sqlite_engine), SECRETS, demo_router, None
    )
    registry.create(HOME_NUMBER, lon=point.x, lat=point.y)
    service = _service(sqlite_engine, demo_router, journal)

    def disk_full(*_args: Any, **_kwargs: Any) -> bool:
        raise StoreUnavailableError("the database is unavailable (disk full)")

    with monkeypatch.context() as patch:  # reads still work on a full disk; writes do not
        patch.setattr(ReportsRepo, "insert", disk_full)
        body = ReportInput.parse({"category": "medical", "reporter_phone": HOME_NUMBER})
        filed = service.file(body, actor=CALL, idempotency_key="home-1")
    assert filed.pending and filed.report.location_source == "registered_caller"
    assert "unregistered_caller" not in filed.report.flags
    # The store answers again, before the replay: a retry is not filed twice.
    retry = service.file(body, actor=CALL, idempotency_key="home-1")
    assert retry.report.id == filed.report.id and retry.pending

    journal.register(REPORT_KIND, report_replayer(ReportsRepo(sqlite_engine, SECRETS)))
    assert journal.replay().replayed == 1
    stored = service.get(filed.report.id, actor=CALL)
    assert (
        stored.status == "open" and stored.reporter_phone_hash == filed.report.reporter_phone_hash
    )
    after = service.file(body, actor=CALL, idempotency_key="home-1")
    assert after.report.id == filed.report.id and not after.pending
    # Replaying the same record again (a crash before it was marked) stores nothing new.
    report_replayer(ReportsRepo(sqlite_engine, SECRETS))(
        {"report": stored.to_dict(), "actor": "k-call", "idempotency": None}
    )
    with sqlite_engine.connect() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM reports")).scalar_one()
        keys = conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)).scalar_one()
    assert (total, keys) == (1, 1)
    with pytest.raises(NotFoundError):
        service.get("r_unknown", actor=CALL)


def test_a_commit_whose_answer_is_lost_is_not_stored_twice(
    demo_router: Any, sqlite_engine: sa.Engine, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(sqlite_engine, demo_router, journal)
    insert = ReportsRepo.insert

    def committed_then_lost(self: ReportsRepo, *args: Any, **kwargs: Any) -> bool:
        insert(self, *args, **kwargs)  # the row is in the store...
        raise StoreUnavailableError("the database is unavailable (connection lost)")  # ...

    with monkeypatch.context() as patch:
        patch.setattr(ReportsRepo, "insert", committed_then_lost)
        filed = service.file(ReportInput.parse(_payload(demo_router)), actor=CALL)
    assert filed.pending
    journal.register(REPORT_KIND, report_replayer(ReportsRepo(sqlite_engine, SECRETS)))
    assert journal.replay().replayed == 1  # skipped: the same id is already stored
    assert service.get(filed.report.id, actor=CALL).status == "open"
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reports")).scalar_one() == 1
