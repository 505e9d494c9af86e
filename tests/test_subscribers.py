"""The caller registry's service: registration, geocoding, updates, CSV import, the caller
lookup."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_router.errors import InputError, InvalidCoordinatesError, InvalidPhoneError, NotFoundError
from geo_router.intake.secrets import Secrets
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.store import Store
from geo_router.store.reports_repo import NuisanceRecord, ReportsRepo
from geo_router.store.schema import subscribers
from geo_router.store.subscribers_repo import Home, SubscribersRepo

PHONE = "+6281234567891"


@dataclass
class Cand:
    lon: float
    lat: float
    confidence: float
    label: str


@dataclass
class Result:
    matched: bool
    best: Cand | None
    candidates: list[Cand] = field(default_factory=list)


class FakeGeocoder:
    """Addresses -> results; anything else matches nothing."""

    def __init__(self, answers: dict[str, Result]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def geocode(self, text: str) -> Result:
        self.calls.append(text)
        return self.answers.get(text, Result(False, None, []))


@pytest.fixture(scope="module")
def points(demo_router: Any) -> list[tuple[float, float]]:
    """Interior points of a few kelurahan of the demo city."""
    layer = demo_router.snapshot.layers["kelurahan"]
    out = []
    for geom in layer.geometries[:: max(1, len(layer.geometries) // 5)][:5]:
        p = geom.representative_point()
        out.append((p.x, p.y))
    return out


@pytest.fixture
def geocoder(points: list[tuple[float, float]]) -> FakeGeocoder:
    lon, lat = points[1]
    return FakeGeocoder(
        {
            "Jalan Aceh 1": Result(True, Cand(lon, lat, 0.97, "Jalan Aceh 1")),
            "Jalan Ace": Result(
                False,
                None,
                [Cand(lon, lat, 0.55, "Jalan Aceh 1"), Cand(lon, lat, 0.5, "Jalan Asia 1")],
            ),
        }
    )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store.from_url(database_url) as opened:
        yield opened


def make_registry(store: Store, router: Any, geocoder: Any = None) -> SubscriberService:
    """A registry over ``store`` with fresh secrets."""
    repos = SubscribersRepo(store.engine), ReportsRepo(store.engine)
    return SubscriberService(*repos, Secrets.generate(), router, geocoder)


@pytest.fixture
def registry(store: Store, demo_router: Any, geocoder: FakeGeocoder) -> SubscriberService:
    return make_registry(store, lambda: demo_router, geocoder)


def test_create_with_location(registry: SubscriberService, points: list) -> None:
    lon, lat = points[0]
    sub = registry.create("0812-3456-7891", name="Siti", address="Jalan Aceh 9", lon=lon, lat=lat)
    assert sub.phone == "+62812****7891" and not sub.phone_revealed
    assert (sub.location_source, sub.geocode_confidence) == ("given", None)
    assert set(sub.zones) == {"kelurahan", "kecamatan", "fire_district", "police_sector"}
    assert sub.zones["kelurahan"]["status"] in ("inside", "near_boundary")
    assert {len(v) for v in sub.responders.values()} == {3}
    assert (sub.name, sub.address, sub.verification_status) == (
        "Siti",
        "Jalan Aceh 9",
        "unverified",
    )
    assert sub.created_at.tzinfo is not None
    revealed = registry.get(sub.id, reveal=True)
    assert revealed.phone == PHONE and revealed.zones == sub.zones
    assert registry.get_by_phone("+62 812 3456 7891").id == sub.id
    assert registry.get_by_phone("0812 0000 1111") is None


def test_create_geocodes_a_confident_address(
    registry: SubscriberService, points: list, geocoder: FakeGeocoder
) -> None:
    sub = registry.create(PHONE, address="Jalan Aceh 1")
    assert (sub.lon, sub.lat) == points[1]
    assert (sub.location_source, sub.geocode_confidence) == ("geocoded", 0.97)
    assert geocoder.calls == ["Jalan Aceh 1"]


def test_weak_geocode_lists_candidates(registry: SubscriberService) -> None:
    with pytest.raises(InputError, match="candidates") as info:
        registry.create(PHONE, address="Jalan Ace")
    assert [c["label"] for c in info.value.detail["candidates"]] == ["Jalan Aceh 1", "Jalan Asia 1"]
    assert registry.count() == 0


@pytest.mark.parametrize("address", [None, "Nowhere 99"])
def test_location_or_address_required(registry: SubscriberService, address: str | None) -> None:
    with pytest.raises(InputError, match="location or a geocodable address is required"):
        registry.create(PHONE, address=address)


def test_without_geocoder_an_address_is_not_enough(store: Store, demo_router: Any) -> None:
    registry = make_registry(store, demo_router)  # Router as is, no geocoder
    with pytest.raises(InputError, match="no address data"):
        registry.create(PHONE, address="Jalan Aceh 1")


def test_duplicate_phone_in_any_format(registry: SubscriberService, points: list) -> None:
    registry.create(PHONE, lon=points[0][0], lat=points[0][1])
    with pytest.raises(InputError) as info:
        registry.create("081234567891", lon=points[0][0], lat=points[0][1])
    assert info.value.detail["code"] == "duplicate_phone"
    assert "0812" not in info.value.message and "7891" not in info.value.message


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"phone": "12"}, InvalidPhoneError, "too short"),
        ({"lon": 500.0, "lat": -6.9}, InvalidCoordinatesError, "longitude"),
        ({"lon": float("nan"), "lat": -6.9}, InvalidCoordinatesError, "longitude"),
        ({"lon": 107.6}, InputError, "lat is missing"),
        ({"lon": 107.6, "lat": -6.9, "verification_status": "maybe"}, InputError, "verification"),
        ({"lon": 107.6, "lat": -6.9, "consent_at": datetime(2024, 1, 1)}, InputError, "consent"),
        ({"lon": 107.6, "lat": -6.9, "name": "x" * 201}, InputError, "name is longer"),
    ],
)
def test_create_refuses_bad_fields(
    registry: SubscriberService, kwargs: dict, error: type, match: str
) -> None:
    kwargs = dict(kwargs)  # parametrize shares the dict between backends
    phone = kwargs.pop("phone", PHONE)
    with pytest.raises(error, match=match):
        registry.create(phone, **kwargs)


def test_verification_and_consent_stored(registry: SubscriberService, points: list) -> None:
    when = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    sub = registry.create(
        PHONE,
        lon=points[0][0],
        lat=points[0][1],
        verification_status="verified",
        verification_method="callback",
        consent_at=when,
    )
    assert (sub.verification_status, sub.verification_method, sub.consent_at) == (
        "verified",
        "callback",
        when,
    )


def test_update_location_reresolves(registry: SubscriberService, points: list) -> None:
    sub = registry.create(PHONE, lon=points[0][0], lat=points[0][1])
    moved = registry.update(sub.id, lon=points[3][0], lat=points[3][1], name="Budi")
    assert (moved.lon, moved.lat, moved.name) == (*points[3], "Budi")
    assert moved.zones["kelurahan"]["zone_id"] != sub.zones["kelurahan"]["zone_id"]
    assert moved.updated_at >= sub.updated_at


def test_update_address_regeocodes_only_geocoded(
    registry: SubscriberService, points: list, geocoder: FakeGeocoder
) -> None:
    given_sub = registry.create(PHONE, lon=points[0][0], lat=points[0][1])
    kept = registry.update(given_sub.id, address="Jalan Aceh 1")
    assert (kept.lon, kept.lat, kept.address) == (*points[0], "Jalan Aceh 1")
    assert geocoder.calls == []
    cleared = registry.update(given_sub.id, lon=None, lat=None)  # falls back to the address
    assert (cleared.location_source, (cleared.lon, cleared.lat)) == ("geocoded", points[1])
    with pytest.raises(InputError, match="candidates"):
        registry.update(given_sub.id, address="Jalan Ace")


def test_update_errors(registry: SubscriberService, points: list) -> None:
    a = registry.create(PHONE, lon=points[0][0], lat=points[0][1])
    registry.create("+6281234567892", lon=points[0][0], lat=points[0][1])
    with pytest.raises(InputError) as info:
        registry.update(a.id, phone="081234567892")
    assert info.value.detail["code"] == "duplicate_phone"
    with pytest.raises(TypeError, match="zones"):  # not an updatable field
        registry.update(a.id, zones={})  # type: ignore[call-arg]
    with pytest.raises(NotFoundError):
        registry.update("nope", name="x")
    changed = registry.update(a.id, phone="0812 3456 7899", reveal=True)
    assert changed.phone == "+6281234567899"
    assert registry.get_by_phone("+6281234567899").id == a.id


def test_delete_list_count(registry: SubscriberService, points: list) -> None:
    ids = [
        registry.create(f"+62812345678{i:02d}", lon=points[0][0], lat=points[0][1]).id
        for i in range(5)
    ]
    assert registry.count() == 5
    assert [s.id for s in registry.list(limit=2, offset=1)] == ids[1:3]
    registry.delete(ids[0])
    with pytest.raises(NotFoundError):
        registry.get(ids[0])
    with pytest.raises(NotFoundError):
        registry.delete(ids[0])
    assert registry.count() == 4
    with pytest.raises(InputError):
        registry.list(limit=0)


def test_repr_hides_personal_fields(registry: SubscriberService, points: list) -> None:
    sub = registry.create(
        PHONE, name="Siti", address="Jalan X 1", lon=points[0][0], lat=points[0][1]
    )
    text = repr(registry.get(sub.id, reveal=True)) + repr(registry.caller(PHONE))
    assert "Siti" not in text and "Jalan X" not in text and "7891" not in text


# --- the caller lookup -------------------------------------------------------------------


def test_caller_unknown_number(registry: SubscriberService) -> None:
    info = registry.caller("0812 9999 0000")
    assert info.registered is False and info.location is None and info.zones == {}
    assert info.nuisance.reports_made == 0 and info.nuisance.false_reports == 0
    assert info.phone == "+62812****0000"


def test_caller_malformed_number(registry: SubscriberService) -> None:
    with pytest.raises(InvalidPhoneError):
        registry.caller("not a phone")


def test_caller_registered_uses_current_router(
    store: Store, demo_router: Any, points: list
) -> None:
    current = {"router": demo_router}
    registry = make_registry(store, lambda: current["router"])
    sub = registry.create(PHONE, name="Siti", lon=points[0][0], lat=points[0][1])
    info = registry.caller("081234567891")
    assert info.registered and info.subscriber_id == sub.id and info.name == "Siti"
    assert info.location == Home(points[0][0], points[0][1], "given", None)
    assert info.zones == sub.zones and info.responders == sub.responders

    class NewBoundaries:
        def route(self, lon: float, lat: float, k: int = 3) -> Any:
            result = demo_router.route(lon, lat, k=k)
            zones = {n: replace(z, version="v2") for n, z in result.zones.items()}
            return replace(result, zones=zones)

    current["router"] = NewBoundaries()
    assert {z["version"] for z in registry.caller(PHONE).zones.values()} == {"v2"}
    assert {z["version"] for z in registry.get(sub.id).zones.values()} != {"v2"}  # as stored


def test_caller_nuisance_counts_the_numbers_reports(
    registry: SubscriberService, points: list
) -> None:
    """The nuisance record comes from the reports table, by the number's HMAC."""
    from geo_router.intake.locate import Locator
    from geo_router.intake.reports.models import ServiceActor
    from geo_router.intake.reports.service import ReportService

    reports = ReportService(
        registry.reports, Locator(registry.subscribers, None), registry.router, registry.secrets
    )
    body = {"category": "waste", "location": dict(zip(("lon", "lat"), points[0], strict=True))}
    actor = ServiceActor(id="k", name="desk", role="intake", channel="call")
    filed = reports.create({**body, "reporter_phone": "0812 9999 0000"}, actor=actor)
    reports.update_status(filed.id, "closed", resolution="prank", actor=actor)
    info = registry.caller("+62 812-9999-0000")
    assert info.nuisance == NuisanceRecord(1, 1, filed.created_at)
    assert registry.caller("0812 9999 1111").nuisance == NuisanceRecord(0, 0, None)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=30))
def test_caller_only_raises_invalid_phone(registry: SubscriberService, text: str) -> None:
    try:
        info = registry.caller(text)
    except InvalidPhoneError:
        return
    assert info.registered is False


# --- CSV import --------------------------------------------------------------------------


def _csv(points: list, *rows: str) -> bytes:
    return ("phone,name,address,lon,lat\n" + "\n".join(rows) + "\n").encode()


def test_import_all_rows(registry: SubscriberService, points: list) -> None:
    (lon0, lat0), (lon2, lat2) = points[0], points[2]
    data = _csv(
        points,
        f"0812-1111-2222,Ani,Jalan A 1,{lon0},{lat0}",
        "+62 812 1111 3333,Budi,Jalan Aceh 1,,",
        f"081211114444,,,{lon2},{lat2}",
    )
    summary = registry.import_csv(data)
    assert (summary.rows, summary.valid, summary.created, summary.committed) == (3, 3, 3, True)
    assert summary.errors == []
    subs = [registry.get(i) for i in summary.ids]
    assert [s.location_source for s in subs] == ["given", "geocoded", "given"]
    assert subs[1].geocode_confidence == 0.97 and subs[1].name == "Budi"
    single = registry.create("0812 1111 5555", lon=lon2, lat=lat2)
    assert subs[2].zones == single.zones and subs[2].responders == single.responders


def test_import_is_atomic_and_names_rows(registry: SubscriberService, points: list) -> None:
    lon, lat = points[0]
    registry.create("081211119999", lon=lon, lat=lat)
    data = _csv(
        points,
        f"0812-1111-2222,Ani,,{lon},{lat}",  # row 2 ok
        f"12,Bad,,{lon},{lat}",  # row 3 bad phone
        f"081211112222,Dup,,{lon},{lat}",  # row 4 duplicate of row 2
        f"081211113333,,,{lon},",  # row 5 lat missing
        f"081211114444,,,abc,{lat}",  # row 6 not a number
        "081211115555,,Jalan Ace,,",  # row 7 weak geocode
        f"081211119999,,,{lon},{lat}",  # row 8 already registered
        ",,,,",  # row 9 no phone
    )
    summary = registry.import_csv(data)
    assert summary.created == 0 and not summary.committed and summary.valid == 1
    assert [(e.row, e.field) for e in summary.errors] == [
        (3, "phone"),
        (4, "phone"),
        (5, "lat"),
        (6, "lon"),
        (7, "address"),
        (8, "phone"),
        (9, "phone"),
    ]
    assert all(e.message.startswith(f"row {e.row}: ") for e in summary.errors)
    assert "row 2" in summary.errors[1].message
    assert registry.count() == 1

    partial = registry.import_csv(data, skip_invalid=True)
    assert (partial.created, partial.skipped, partial.committed) == (1, 7, True)
    assert registry.count() == 2


def test_import_dry_run_writes_nothing(registry: SubscriberService, points: list) -> None:
    lon, lat = points[0]
    summary = registry.import_csv(_csv(points, f"081211112222,,,{lon},{lat}"), dry_run=True)
    assert (summary.valid, summary.created, summary.committed, summary.dry_run) == (
        1,
        0,
        False,
        True,
    )
    assert registry.count() == 0


def test_import_inputs(registry: SubscriberService, points: list, tmp_path: Path) -> None:
    lon, lat = points[0]
    body = f"\ufeffPhone,Name,Extra,Lon,Lat\n081211112222,A,x,{lon},{lat}\n"
    assert registry.import_csv(body).created == 1
    path = tmp_path / "s.csv"
    path.write_text(f"phone,lon,lat\n081211113333,{lon},{lat}\n")
    assert registry.import_csv(path).created == 1
    assert (
        registry.import_csv(
            io.BytesIO(f"phone,lon,lat\n081211114444,{lon},{lat}\n".encode())
        ).created
        == 1
    )
    assert (
        registry.import_csv(io.StringIO(f"phone,lon,lat\n081211115555,{lon},{lat}\n")).created == 1
    )
    with pytest.raises(InputError, match="phone column"):
        registry.import_csv(b"name,lon,lat\nx,1,2\n")
    with pytest.raises(InputError, match="UTF-8"):
        registry.import_csv(b"phone\n\xff\xfe\x00")
    assert registry.import_csv(b"phone,lon,lat\n").rows == 0


def test_rows_stored_without_plaintext(registry: SubscriberService, points: list) -> None:
    sub = registry.create(
        PHONE, name="Siti", address="Jalan Aceh 9", lon=points[0][0], lat=points[0][1]
    )
    with registry.subscribers.engine.connect() as conn:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.id == sub.id)).one()
    flat = " ".join(str(v) for v in row)
    assert "Siti" not in flat and "Aceh" not in flat and "81234567891" not in flat
