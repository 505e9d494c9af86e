"""Report intake's service: locate, route, screen, store (idempotent, atomic); read, list,
lifecycle, views."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_router.errors import (
    IdempotencyConflictError,
    InputError,
    InvalidCoordinatesError,
    InvalidPhoneError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnknownCategoryError,
)
from geo_router.intake.locate import Locator
from geo_router.intake.reports.models import TRANSITIONS, ReportFilters, ReportInput, ServiceActor
from geo_router.intake.reports.service import ReportService
from geo_router.intake.secrets import Secrets
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.store import make_engine, reports_repo, upgrade
from geo_router.store.reports_repo import NuisanceRecord, ReportsRepo
from geo_router.store.schema import idempotency_keys, report_updates, report_zones, reports
from geo_router.store.subscribers_repo import SubscribersRepo

ADMIN = ServiceActor(id="k-admin", name="admin key", role="admin")
CALL = ServiceActor(id="k-call", name="call desk", role="intake", channel="call")
SMS = ServiceActor(id="k-sms", name="sms gateway", role="intake", channel="sms")
ANALYST = ServiceActor(id="k-analyst", name="analyst", role="analyst")
REGISTERED = "+6281234567890"
STRANGER = "+6281399998888"


class FakeClock:
    """A controllable UTC clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_service(engine: Any, city: Any, secrets: Secrets, **options: Any) -> ReportService:
    """A report service over ``engine`` (``geocoder`` among the options, else none)."""
    locator = Locator(SubscribersRepo(engine), options.pop("geocoder", None))
    return ReportService(ReportsRepo(engine), locator, city, secrets, **options)


class FakeGeocoder:
    """One known address; everything else is a weak match with candidates."""

    def __init__(self, lon: float, lat: float) -> None:
        self.best = SimpleNamespace(lon=lon, lat=lat, confidence=0.93, label="Jalan Aceh 1")

    def geocode(self, text: str) -> Any:
        if text.lower().startswith("jalan aceh 1"):
            return SimpleNamespace(matched=True, best=self.best, candidates=[self.best])
        weak = SimpleNamespace(lon=107.6, lat=-6.9, confidence=0.41, label="Jalan Acehh 10")
        return SimpleNamespace(matched=False, best=weak, candidates=[weak])


@pytest.fixture(scope="module")
def city(demo_router: Any) -> Any:
    return demo_router


@pytest.fixture(scope="module")
def inside(city: Any) -> tuple[float, float]:
    """A point well inside the first kelurahan of the demo city."""
    point = city.snapshot.layers["kelurahan"].geometries[0].representative_point()
    return (float(point.x), float(point.y))


@pytest.fixture
def engine(migrated_engine: Any) -> Any:
    return migrated_engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(engine: Any, city: Any, inside: tuple[float, float], clock: FakeClock) -> ReportService:
    secrets = Secrets.generate()
    registry = SubscriberService(SubscribersRepo(engine), ReportsRepo(engine), secrets, city)
    registry.create(REGISTERED, lon=inside[0], lat=inside[1])
    return make_service(
        engine,
        lambda: city,
        secrets,
        geocoder=FakeGeocoder(*inside),
        region="ID",
        rate_limit_per_hour=3,
        clock=clock,
    )


def _body(inside: tuple[float, float], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "call",
        "category": "waste",
        "description": "sampah menumpuk",
        "location": {"lon": inside[0], "lat": inside[1]},
    }
    body.update(extra)
    return body


def _count(engine: Any, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --------------------------------------------------------------------------- schema

OWN_TABLES = {"reports", "report_zones", "report_updates", "idempotency_keys"}


@pytest.mark.filterwarnings("ignore:Did not recognize type 'geometry':sqlalchemy.exc.SAWarning")
def test_migration_matches_the_core_tables(engine: Any) -> None:
    """Like ``alembic check`` for this module's tables (the PostGIS column is migration-only)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from geo_router.store.schema import metadata

    def own_name(name: str | None, type_: str, _parents: object) -> bool:
        return type_ != "table" or name in OWN_TABLES

    def own_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "name", None) in OWN_TABLES and name not in (
            "geom",
            "ix_reports_geom",
        )

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "include_name": own_name, "include_object": own_object},
        )
        assert compare_metadata(context, metadata) == []
    assert set(sa.inspect(engine).get_table_names()) >= OWN_TABLES


def test_downgrade_drops_the_report_tables(database_url: str, engine: Any) -> None:
    from alembic import command

    from geo_router.store.database import alembic_config

    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert not OWN_TABLES & set(sa.inspect(engine).get_table_names())
    upgrade(database_url)
    assert set(sa.inspect(engine).get_table_names()) >= OWN_TABLES


# --------------------------------------------------------------------------- create


def test_create_stores_the_full_decision(service: ReportService, city: Any, inside: Any) -> None:
    report = service.create(_body(inside, category="fire"), actor=CALL)
    expected = city.route(*inside, category="fire")
    assert report.id.startswith("r_") and len(report.id) >= 16
    assert report.status == "open" and report.channel == "call"
    assert report.location_source == "given"
    assert report.zones == {n: m.zone_id for n, m in expected.zones.items() if m.zone_id}
    decision = report.decision
    assert decision["agency"] == expected.category.agency
    assert decision["category"]["emergency"] is True
    assert set(decision["zones"]) == set(expected.zones)
    assert decision["zones"]["kelurahan"]["candidates"][0]["zone_id"] == report.zones["kelurahan"]
    assert decision["versions"] == dict(city.snapshot.versions)
    assert decision["responders"]["fire_station"][0]["facility_id"]
    assert report.flags == []
    stored = service.get(report.id, actor=ADMIN)
    assert stored.to_dict() == report.to_dict()
    assert [c.to_status for c in service.history(report.id)] == ["open"]


def test_ids_are_random_not_sequential(service: ReportService, inside: Any) -> None:
    ids = {service.create(_body(inside), actor=CALL).id for _ in range(3)}
    assert len(ids) == 3


def test_channel_defaults_to_the_key_and_must_match_it(service: ReportService, inside: Any) -> None:
    body = _body(inside)
    del body["channel"]
    assert service.create(body, actor=SMS).channel == "sms"
    with pytest.raises(PermissionDeniedError, match="channel 'sms' only"):
        service.create(_body(inside, channel="call"), actor=SMS)
    with pytest.raises(InputError, match="channel is required"):
        service.create(body, actor=ADMIN)


def test_geocoded_address(service: ReportService, inside: Any) -> None:
    body = _body(inside, address="Jalan Aceh 1")
    del body["location"]
    report = service.create(body, actor=CALL)
    assert report.location_source == "geocoded"
    assert report.location_confidence == pytest.approx(0.93)
    assert (report.lon, report.lat) == inside
    assert report.decision["location"]["label"] == "Jalan Aceh 1"


def test_weak_geocode_is_refused_with_candidates(service: ReportService, inside: Any) -> None:
    body = _body(inside, address="jl acehh")
    del body["location"]
    with pytest.raises(InputError) as info:
        service.create(body, actor=CALL)
    assert info.value.detail["candidates"][0]["label"] == "Jalan Acehh 10"
    assert _count(service.reports.engine, reports) == 0


def test_registered_caller_location(service: ReportService, inside: Any) -> None:
    body = _body(inside, reporter_phone="0812-3456-7890")
    del body["location"]
    report = service.create(body, actor=CALL)
    assert report.location_source == "registered_caller"
    assert (report.lon, report.lat) == inside
    assert "unregistered_caller" not in report.flags
    assert report.reporter_phone_hash == service.secrets.hash_phone(REGISTERED)
    assert service.secrets.decrypt(report.reporter_phone_enc) == REGISTERED
    assert REGISTERED not in str(report.to_dict())


def test_unregistered_caller_is_flagged_not_refused(service: ReportService, inside: Any) -> None:
    report = service.create(_body(inside, reporter_phone=STRANGER), actor=CALL)
    assert "unregistered_caller" in report.flags


def test_no_location_at_all(service: ReportService, inside: Any) -> None:
    body = _body(inside, reporter_phone=STRANGER)
    del body["location"]
    with pytest.raises(InputError, match="cannot locate"):
        service.create(body, actor=CALL)


def test_unknown_category_names_the_known_codes(service: ReportService, inside: Any) -> None:
    with pytest.raises(UnknownCategoryError, match="waste") as info:
        service.create(_body(inside, category="graffiti"), actor=CALL)
    assert "fire" in info.value.detail["known"]


def test_malformed_phone(service: ReportService, inside: Any) -> None:
    with pytest.raises(InvalidPhoneError):
        service.create(_body(inside, reporter_phone="12ab"), actor=CALL)


def test_bad_body_fields_are_named() -> None:
    with pytest.raises(InvalidCoordinatesError, match=r"location\.lon"):
        ReportInput.parse(
            {"channel": "call", "category": "fire", "location": {"lon": "x", "lat": 1}}
        )
    with pytest.raises(InputError, match="media_url"):
        ReportInput.parse({"category": "fire", "media_url": "ftp://x"})


def test_outside_coverage_is_flagged(service: ReportService, inside: Any) -> None:
    report = service.create(_body(inside, location={"lon": 0.0, "lat": 0.0}), actor=CALL)
    assert "outside_coverage" in report.flags
    assert report.zones == {}
    assert report.decision["flags"] == report.flags


def test_swapped_axes_are_refused_with_a_hint(service: ReportService, inside: Any) -> None:
    swapped = {"lon": inside[1], "lat": inside[0]}  # lat 107 is out of range
    with pytest.raises(InvalidCoordinatesError) as info:
        service.create(_body(inside, location=swapped), actor=CALL)
    assert info.value.detail.get("possible_axis_swap") is True


def test_rate_limit_refuses_non_emergency_and_flags_emergency(
    service: ReportService, inside: Any, clock: FakeClock
) -> None:
    for _ in range(3):
        service.create(_body(inside, reporter_phone=REGISTERED), actor=CALL)
        clock.advance(minutes=10)
    with pytest.raises(RateLimitedError) as info:
        service.create(_body(inside, reporter_phone=REGISTERED), actor=CALL)
    # The first of the three leaves the window 60 min after it was filed (now: +30 min).
    assert info.value.retry_after_s == 30 * 60
    emergency = service.create(
        _body(inside, category="fire", reporter_phone=REGISTERED), actor=CALL
    )
    assert "rate_limited" in emergency.flags
    assert emergency.status == "open"
    clock.advance(minutes=31)
    # Now the window holds the 2nd, 3rd and the emergency report: still at the limit.
    with pytest.raises(RateLimitedError):
        service.create(_body(inside, reporter_phone=REGISTERED), actor=CALL)
    clock.advance(minutes=10)
    assert service.create(_body(inside, reporter_phone=REGISTERED), actor=CALL).flags == []


def _file_in_parallel(service: ReportService, body: dict[str, Any], n: int) -> list[Any]:
    """File ``body`` from ``n`` threads released at once: reports, or the errors raised."""
    barrier = threading.Barrier(n)

    def one(_: int) -> Any:
        barrier.wait()
        try:
            return service.create(body, actor=CALL)
        except RateLimitedError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_rate_limit_holds_for_parallel_filings_from_a_fresh_number(
    engine: Any, city: Any, inside: Any, clock: FakeClock
) -> None:
    # Issue 10, Medium 5: the count was read outside the write, so 40 parallel filings
    # from a fresh number got 21 to 40 through a limit of 20.
    service = make_service(
        engine, lambda: city, Secrets.generate(), rate_limit_per_hour=20, clock=clock
    )
    results = _file_in_parallel(service, _body(inside, reporter_phone=STRANGER), 40)
    accepted = [r for r in results if not isinstance(r, RateLimitedError)]
    assert len(accepted) == 20
    assert all(r.retry_after_s >= 1 for r in results if isinstance(r, RateLimitedError))
    assert _count(engine, reports) == 20


def test_parallel_emergencies_over_the_limit_are_all_stored_and_flagged(
    engine: Any, city: Any, inside: Any, clock: FakeClock
) -> None:
    service = make_service(
        engine, lambda: city, Secrets.generate(), rate_limit_per_hour=20, clock=clock
    )
    body = _body(inside, category="fire", reporter_phone=STRANGER)
    results = _file_in_parallel(service, body, 40)
    assert not any(isinstance(r, RateLimitedError) for r in results)
    flagged = [r for r in results if "rate_limited" in r.flags]
    assert len(flagged) == 20
    assert all(r.decision["flags"] == r.flags for r in results)
    assert _count(engine, reports) == 40


def test_repeat_false_reports_flag_and_nuisance_record(
    service: ReportService, inside: Any, clock: FakeClock
) -> None:
    for resolution in ("prank", "false_report"):
        report = service.create(_body(inside, reporter_phone=STRANGER), actor=CALL)
        service.update_status(report.id, "closed", resolution=resolution, actor=CALL)
        clock.advance(minutes=30)
    phone_hash = service.secrets.hash_phone(STRANGER)
    record = service.reports.nuisance(phone_hash)
    assert record.reports_made == 2 and record.false_reports == 2
    assert record.last_seen == clock.now - timedelta(minutes=30)
    third = service.create(_body(inside, category="fire", reporter_phone=STRANGER), actor=CALL)
    assert {"repeat_false_reports", "unregistered_caller"} <= set(third.flags)
    assert service.reports.nuisance("nobody") == NuisanceRecord(0, 0, None)


# --------------------------------------------------------------------------- idempotency


def test_idempotent_replay_returns_the_first_answer(service: ReportService, inside: Any) -> None:
    first = service.create(_body(inside), actor=CALL, idempotency_key="abc-1")
    again = service.create(_body(inside), actor=CALL, idempotency_key="abc-1")
    assert again.to_dict() == first.to_dict()
    assert _count(service.reports.engine, reports) == 1
    with pytest.raises(IdempotencyConflictError, match="abc-1"):
        service.create(_body(inside, description="other"), actor=CALL, idempotency_key="abc-1")
    # Keys are scoped to the API key: another key may use the same text.
    other = service.create(_body(inside, channel="sms"), actor=SMS, idempotency_key="abc-1")
    assert other.id != first.id


def test_idempotency_ignores_key_order(service: ReportService, inside: Any) -> None:
    body = _body(inside)
    first = service.create(body, actor=CALL, idempotency_key="k")
    reordered = dict(reversed(list(body.items())))
    assert service.create(reordered, actor=CALL, idempotency_key="k").id == first.id


def test_create_is_all_or_nothing(
    service: ReportService, inside: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    # The idempotency key is the last row written: everything before it must roll back.
    monkeypatch.setattr(reports_repo, "_idempotency_values", boom)
    with pytest.raises(RuntimeError):
        service.create(_body(inside), actor=CALL, idempotency_key="x")
    for table in (reports, report_zones, report_updates):
        assert _count(service.reports.engine, table) == 0


# --------------------------------------------------------------------------- read, list


def test_other_channels_reports_are_not_found(service: ReportService, inside: Any) -> None:
    report = service.create(_body(inside), actor=CALL)
    assert service.get(report.id, actor=CALL).id == report.id
    assert service.get(report.id, actor=ANALYST).id == report.id
    with pytest.raises(NotFoundError):
        service.get(report.id, actor=SMS)
    with pytest.raises(NotFoundError):
        service.update_status(report.id, "acknowledged", actor=SMS)
    with pytest.raises(NotFoundError):
        service.history(report.id, actor=SMS)
    with pytest.raises(NotFoundError):
        service.get("r_missing", actor=ADMIN)


def test_analysts_never_see_phone_fields(service: ReportService, inside: Any) -> None:
    report = service.create(_body(inside, reporter_phone=STRANGER), actor=CALL)
    analyst_view = service.view(report, ANALYST)
    assert "reporter_phone_hash" not in analyst_view
    assert "reporter_phone_enc" not in analyst_view
    assert "reporter_phone" not in analyst_view
    admin_view = service.view(report, ADMIN)
    assert "reporter_phone_hash" not in admin_view and "reporter_phone_enc" not in admin_view
    assert admin_view["reporter_phone"] == STRANGER
    assert service.view(report, CALL)["reporter_phone"] == "+62813****8888"  # masked


def test_list_filters(service: ReportService, city: Any, inside: Any, clock: FakeClock) -> None:
    a = service.create(_body(inside), actor=CALL)
    clock.advance(minutes=5)
    b = service.create(_body(inside, category="fire", channel="sms"), actor=SMS)
    clock.advance(minutes=5)
    c = service.create(_body(inside, location={"lon": 0.0, "lat": 0.0}), actor=CALL)
    service.update_status(a.id, "acknowledged", actor=CALL)

    def ids(**filters: Any) -> list[str]:
        return [r.id for r in service.list(ReportFilters.parse(**filters), actor=ADMIN).items]

    assert ids() == [c.id, b.id, a.id]  # newest first
    kel = a.zones["kelurahan"]
    assert ids(zone=f"kelurahan:{kel}") == [b.id, a.id]
    assert ids(zone="kelurahan:nope") == []
    assert ids(category="fire") == [b.id]
    assert ids(status="acknowledged") == [a.id]
    assert ids(statuses=("open",)) == [c.id, b.id]
    assert ids(channel="sms") == [b.id]
    assert ids(created_from=clock.now - timedelta(minutes=5)) == [c.id, b.id]
    assert ids(created_to=(clock.now - timedelta(minutes=10)).isoformat()) == [a.id]
    lon, lat = inside
    assert ids(bbox=f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}") == [b.id, a.id]
    # PostgreSQL with PostGIS filters on the generated geometry column (&&), SQLite on lon/lat.
    has_geom = service.reports.has_geom_column()
    assert has_geom is (service.reports.engine.dialect.name == "postgresql")
    assert ids(ids=(a.id, c.id)) == [c.id, a.id]
    page = service.list(ReportFilters.parse(limit=1, offset=1), actor=ADMIN)
    assert [r.id for r in page.items] == [b.id] and page.total == 3
    assert [r.id for r in service.list(None, actor=SMS).items] == [b.id]
    assert service.list(None, actor=SMS).total == 1


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"zone": "kelurahan"}, "zone"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "10,0,5,1"}, "bbox"),
        ({"status": "done"}, "status"),
        ({"created_from": "yesterday"}, "created_from"),
    ],
)
def test_bad_filters_name_the_field(filters: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as info:
        ReportFilters.parse(**filters)
    assert info.value.detail["errors"][0]["field"] == field


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-180, 180),
    st.floats(-90, 90),
    st.floats(0, 50),
    st.floats(0, 50),
)
def test_bbox_parsing_property(minlon: float, minlat: float, w: float, h: float) -> None:
    maxlon, maxlat = min(minlon + w, 180.0), min(minlat + h, 90.0)
    parsed = ReportFilters.parse(bbox=f"{minlon!r},{minlat!r},{maxlon!r},{maxlat!r}")
    assert parsed.bbox == (minlon, minlat, maxlon, maxlat)
    if maxlon > minlon:
        with pytest.raises(InputError):
            ReportFilters.parse(bbox=f"{maxlon!r},{minlat!r},{minlon!r},{maxlat!r}")


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle_and_history(service: ReportService, inside: Any, clock: FakeClock) -> None:
    report = service.create(_body(inside), actor=CALL)
    clock.advance(minutes=1)
    service.update_status(report.id, "acknowledged", actor=CALL)
    clock.advance(minutes=1)
    service.update_status(report.id, "in_progress", note="crew sent", actor=CALL)
    clock.advance(minutes=1)
    with pytest.raises(InputError, match="needs a resolution"):
        service.update_status(report.id, "closed", actor=CALL)
    closed = service.update_status(report.id, "closed", resolution="resolved", actor=CALL)
    assert closed.status == "closed" and closed.resolution == "resolved"
    assert closed.closed_at == clock.now
    with pytest.raises(PermissionDeniedError, match="only an admin"):
        service.update_status(report.id, "open", actor=CALL)
    with pytest.raises(InputError, match="cannot go from 'closed' to 'in_progress'"):
        service.update_status(report.id, "in_progress", actor=ADMIN)
    reopened = service.update_status(report.id, "open", note="not fixed", actor=ADMIN)
    assert reopened.resolution is None and reopened.closed_at is None
    history = service.history(report.id, actor=ADMIN)
    assert [(h.from_status, h.to_status) for h in history] == [
        (None, "open"),
        ("open", "acknowledged"),
        ("acknowledged", "in_progress"),
        ("in_progress", "closed"),
        ("closed", "open"),
    ]
    assert history[2].note == "crew sent" and history[3].resolution == "resolved"
    assert history[1].actor == "k-call/call desk"
    assert history[4].at == clock.now


def test_resolution_only_when_closing(service: ReportService, inside: Any) -> None:
    report = service.create(_body(inside), actor=CALL)
    with pytest.raises(InputError, match="only when closing"):
        service.update_status(report.id, "acknowledged", resolution="resolved", actor=CALL)
    with pytest.raises(InputError, match="cannot go from 'open' to 'in_progress'"):
        service.update_status(report.id, "in_progress", actor=CALL)
    with pytest.raises(InputError, match="unknown status"):
        service.update_status(report.id, "done", actor=CALL)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.sampled_from(["open", "acknowledged", "in_progress", "closed"]), max_size=6))
def test_lifecycle_property(service: ReportService, inside: Any, steps: list[str]) -> None:
    """Whatever is asked, the stored status follows TRANSITIONS and history mirrors it."""
    report = service.create(_body(inside), actor=ADMIN)
    status, expected = "open", [(None, "open")]
    for step in steps:
        resolution = "duplicate" if step == "closed" else None
        if (status, step) in TRANSITIONS:
            service.update_status(report.id, step, resolution=resolution, actor=ADMIN)
            expected.append((status, step))
            status = step
        else:
            with pytest.raises(InputError):
                service.update_status(report.id, step, resolution=resolution, actor=ADMIN)
    assert service.get(report.id, actor=ADMIN).status == status
    assert [(h.from_status, h.to_status) for h in service.history(report.id)] == expected


# --------------------------------------------------------------------------- expiry


def test_idempotency_keys_expire(service: ReportService, inside: Any, clock: FakeClock) -> None:
    """After the TTL a key is free again; expired keys are purged on the next keyed write."""
    first = service.create(_body(inside), actor=CALL, idempotency_key="day-1")
    clock.advance(hours=23)
    assert service.create(_body(inside), actor=CALL, idempotency_key="day-1").id == first.id
    clock.advance(hours=2)  # 25 h after the first: expired
    other = service.create(_body(inside, description="other"), actor=CALL, idempotency_key="day-1")
    assert other.id != first.id
    again = service.create(_body(inside, description="other"), actor=CALL, idempotency_key="day-1")
    assert again.id == other.id
    assert _count(service.reports.engine, idempotency_keys) == 1  # the expired row was purged
    assert _count(service.reports.engine, reports) == 2  # reports themselves are never purged


def test_idempotency_ttl_must_be_positive(engine: Any, city: Any) -> None:
    with pytest.raises(ValueError, match="idempotency_ttl"):
        make_service(engine, city, Secrets.generate(), idempotency_ttl=timedelta(0))


@pytest.fixture
def postgres_without_postgis() -> Iterator[str]:
    """A fresh PostgreSQL database owned by a plain role that may not create PostGIS."""
    url = os.environ.get("GEO_ROUTER_TEST_DATABASE_URL")
    if not url:
        pytest.skip("PostgreSQL tests need GEO_ROUTER_TEST_DATABASE_URL (set by .ci/run)")
    name = f"gr_plain_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{name}" LOGIN'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    plain = sa.engine.make_url(url).set(username=name, database=name)
    try:
        yield plain.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.mark.postgres
def test_postgres_without_postgis_filters_bbox_on_lon_lat(
    postgres_without_postgis: str, city: Any, inside: tuple[float, float], clock: FakeClock
) -> None:
    """Migration 0002 skips the geometry column when PostGIS cannot be created; bbox works."""
    upgrade(postgres_without_postgis)
    engine = make_engine(postgres_without_postgis)
    try:
        if ReportsRepo(engine).has_geom_column():
            pytest.skip("PostGIS is a trusted extension here: a plain owner could create it")
        service = make_service(engine, lambda: city, Secrets.generate(), clock=clock)
        near = service.create(_body(inside), actor=CALL)
        far = service.create(_body(inside, location={"lon": 0.0, "lat": 0.0}), actor=CALL)
        lon, lat = inside
        box = f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
        found = service.list(ReportFilters.parse(bbox=box), actor=ADMIN).items
        assert [r.id for r in found] == [near.id]
        assert far.id in [r.id for r in service.list(actor=ADMIN).items]
    finally:
        engine.dispose()
