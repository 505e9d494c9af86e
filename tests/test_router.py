from __future__ import annotations

import dataclasses
import math
import threading
import time
from datetime import UTC
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_router.city.models import STATUS_CODES, RouteResult, Warning, ZoneShare, ZoneStatus
from geo_router.city.profile import load_profile
from geo_router.city.router import Router, circle
from geo_router.city.snapshot import CitySnapshot, build_snapshot
from geo_router.errors import (
    InvalidCoordinatesError,
    InvalidGeometryError,
    ProfileError,
    UnknownCategoryError,
)

# A city of 1-degree squares at lon 10..12, lat 40..42, so that (lat, lon) read as (lon, lat)
# is still a valid point elsewhere (the axis-swap case).
KEL = {"K1": (10, 40), "K2": (11, 40), "K3": (10, 41), "K4": (11, 41)}
KEC = {"A": shapely.box(10, 40, 11, 42), "B": shapely.box(11, 40, 12, 42)}
KEL_PARENT = {"K1": "A", "K2": "B", "K3": "A", "K4": "B"}

PROFILE = """
name = "Kota Kotak"
[[layers]]
name = "kelurahan"
path = "kel.geojson"
id_field = "kode"
name_field = "nama"
parent = "kecamatan"
[[layers]]
name = "kecamatan"
path = "kec.geojson"
id_field = "kode"
[[facilities]]
type = "fire_station"
path = "fire.csv"
id_field = "id"
name_field = "name"
lon_field = "lon"
lat_field = "lat"
[[facilities]]
type = "police_post"
path = "police.csv"
id_field = "id"
lon_field = "lon"
lat_field = "lat"
[[categories]]
code = "fire"
agency = "Damkar"
responders = ["fire_station"]
emergency = true
[[categories]]
code = "noise"
agency = "Satpol PP"
responders = ["police_post"]
[[categories]]
code = "water"
agency = "PDAM"
"""


def write_city(folder: Path, *, edition: int = 1, kel: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    kel = (
        kel
        if kel is not None
        else {k: shapely.box(x, y, x + 1, y + 1) for k, (x, y) in KEL.items()}
    )
    gpd.GeoDataFrame(
        {"kode": list(kel), "nama": [f"Kel {k}" for k in kel], "edition": edition},
        geometry=list(kel.values()),
        crs="EPSG:4326",
    ).to_file(folder / "kel.geojson", driver="GeoJSON")
    gpd.GeoDataFrame(
        {"kode": list(KEC), "edition": edition}, geometry=list(KEC.values()), crs="EPSG:4326"
    ).to_file(folder / "kec.geojson", driver="GeoJSON")
    (folder / "fire.csv").write_text(
        "id,name,lon,lat\nF1,Fire one,10.5,40.5\nF2,Fire two,11.5,41.5\nF3,Fire three,10.2,41.8\n"
        + ("F4,Fire four,11.9,40.1\n" if edition > 1 else "")
    )
    (folder / "police.csv").write_text("id,lon,lat\nP1,10.9,40.9\nP2,11.1,41.1\n")
    (folder / "city.toml").write_text(PROFILE)
    return folder / "city.toml"


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_city(tmp_path_factory.mktemp("city"))


@pytest.fixture(scope="module")
def router(city: Path) -> Router:
    return Router.from_profile(city)


def test_snapshot_contents(router: Router) -> None:
    snap = router.snapshot
    assert isinstance(snap, CitySnapshot)
    assert list(snap.layers) == ["kelurahan", "kecamatan"]
    assert set(snap.zone_indexes) == {"kelurahan", "kecamatan"}
    assert set(snap.facilities) == set(snap.nearest) == {"fire_station", "police_post"}
    assert set(snap.categories) == {"fire", "noise", "water"}
    assert snap.categories["water"].responders == []
    assert set(snap.versions) == {"kelurahan", "kecamatan", "fire_station", "police_post"}
    assert all(len(v) == 12 for v in snap.versions.values())
    assert snap.parents == {"kelurahan": KEL_PARENT}
    assert snap.parent_of("kelurahan", "K4") == "B"
    assert snap.parent_of("kecamatan", "A") is None
    assert snap.coverage_bounds == (10.0, 40.0, 12.0, 42.0)
    assert snap.loaded_at.tzinfo is UTC
    assert snap.tolerance_m == 10.0
    with pytest.raises(AttributeError):
        snap.tolerance_m = 5.0  # type: ignore[misc]


def test_child_layer_not_nesting(tmp_path: Path) -> None:
    shifted = {k: shapely.box(x + 0.5, y, x + 1.5, y + 1) for k, (x, y) in KEL.items()}
    path = write_city(tmp_path, kel=shifted)
    with pytest.raises(ProfileError, match="layer 'kelurahan' does not nest in 'kecamatan'"):
        build_snapshot(load_profile(path))


def test_route_inside(router: Router) -> None:
    result = router.route(10.25, 40.25)
    kel = result.zones["kelurahan"]
    assert (kel.zone_id, kel.name, kel.status) == ("K1", "Kel K1", ZoneStatus.INSIDE)
    assert kel.version == router.snapshot.versions["kelurahan"]
    assert kel.candidates[0].zone_id == "K1" and kel.candidates[0].distance_m == 0.0
    assert result.zones["kecamatan"].zone_id == "A"
    assert result.zones["kecamatan"].name is None
    assert result.warnings == []
    assert result.category is None
    assert set(result.responders) == {"fire_station", "police_post"}
    fire = result.responders["fire_station"]
    assert [r.facility_id for r in fire] == ["F1", "F3", "F2"]
    assert [r.distance_m for r in fire] == sorted(r.distance_m for r in fire)
    assert fire[0].name == "Fire one" and (fire[0].lon, fire[0].lat) == (10.5, 40.5)
    assert 0 <= fire[0].bearing_deg < 90  # north-east of the point
    assert result.responders["police_post"][0].name is None


def test_route_k_and_category(router: Router) -> None:
    result = router.route(10.25, 40.25, category="fire", k=1)
    assert list(result.responders) == ["fire_station"]
    assert [r.facility_id for r in result.responders["fire_station"]] == ["F1"]
    assert result.category is not None and result.category.agency == "Damkar"
    noise = router.route(10.25, 40.25, category="noise", k=5)
    assert list(noise.responders) == ["police_post"]
    assert len(noise.responders["police_post"]) == 2  # only two exist
    assert router.route(10.25, 40.25, category="water").responders == {}
    with pytest.raises(ValueError, match="k must be"):
        router.route(10.25, 40.25, k=0)


def test_unknown_category(router: Router) -> None:
    with pytest.raises(UnknownCategoryError, match=r"'ufo' \(categories: fire, noise, water\)"):
        router.route(10.25, 40.25, category="ufo")
    with pytest.raises(UnknownCategoryError):
        router.category("ufo")
    assert router.category("fire").responders == ["fire_station"]


def test_outside_coverage(router: Router) -> None:
    result = router.route(0.0, 0.0)
    assert result.warnings == [Warning.OUTSIDE_COVERAGE]
    for match in result.zones.values():
        assert match.status == ZoneStatus.OUTSIDE_COVERAGE and match.zone_id is None
    assert len(result.responders["fire_station"]) == 3  # responders still ranked


def test_possible_axis_swap(router: Router) -> None:
    result = router.route(40.5, 10.5)
    assert result.warnings == [Warning.OUTSIDE_COVERAGE, Warning.POSSIBLE_AXIS_SWAP]
    bulk = router.route_many([40.5, 10.5, 0.0], [10.5, 40.5, 0.0])
    assert bulk.axis_swap.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("lon", "lat"), [(200.0, 40.0), (10.0, 95.0), (math.nan, 40.0), ("x", 40.0), (True, 40.0)]
)
def test_invalid_coordinates(router: Router, lon: object, lat: object) -> None:
    with pytest.raises(InvalidCoordinatesError):
        router.route(lon, lat)  # type: ignore[arg-type]


def test_near_boundary(router: Router) -> None:
    result = router.route(11.0 + 1e-6, 40.5)  # ~0.1 m east of the K1|K2 edge
    kel = result.zones["kelurahan"]
    assert kel.status == ZoneStatus.NEAR_BOUNDARY
    assert kel.zone_id == "K2"
    assert [c.zone_id for c in kel.candidates] == ["K2", "K1"]
    assert 0 < kel.candidates[1].distance_m < 10


def test_route_many_arrays_and_invalid_rows(router: Router) -> None:
    bulk = router.route_many([10.25, 999.0, 11.5, None], [40.25, 40.0, 41.5, 40.0], k=2)
    assert bulk.n == 4
    assert bulk.valid.tolist() == [True, False, True, False]
    assert bulk.reasons[0] is None and "longitude" in bulk.reasons[1]
    kel = bulk.layers["kelurahan"]
    invalid = STATUS_CODES.index(ZoneStatus.INVALID)
    assert kel.status.tolist() == [0, invalid, 0, invalid]
    assert kel.primary.tolist()[1] == -1 and kel.primary.tolist()[3] == -1
    assert kel.cand_ptr.tolist() == [0, 1, 1, 2, 2]
    fire = bulk.nearest["fire_station"]
    assert fire.index.shape == (4, 2)
    assert (fire.index[[1, 3]] == -1).all() and np.isnan(fire.distance_m[[1, 3]]).all()
    results = router.results(bulk)
    assert results[1].zones["kelurahan"].status == ZoneStatus.INVALID
    assert results[1].responders["fire_station"] == []
    assert results[2].zones["kelurahan"].zone_id == "K4"
    assert router.result_at(bulk, 2) == results[2]
    only = router.route_many([10.25], [40.25], responder_types=["police_post"])
    assert list(only.nearest) == ["police_post"]
    with pytest.raises(UnknownCategoryError, match="unknown facility type"):
        router.route_many([10.25], [40.25], responder_types=["ufo"])


def assert_same_route(a: RouteResult, b: RouteResult) -> None:
    assert a.warnings == b.warnings
    assert a.category == b.category
    for name in a.zones:
        za, zb = a.zones[name], b.zones[name]
        assert (za.zone_id, za.status, za.name, za.version) == (
            zb.zone_id,
            zb.status,
            zb.name,
            zb.version,
        )
        assert [c.zone_id for c in za.candidates] == [c.zone_id for c in zb.candidates]
    assert list(a.responders) == list(b.responders)
    for kind in a.responders:
        assert [r.facility_id for r in a.responders[kind]] == [
            r.facility_id for r in b.responders[kind]
        ]
        for ra, rb in zip(a.responders[kind], b.responders[kind], strict=True):
            assert ra.distance_m == pytest.approx(rb.distance_m, rel=1e-12)
            assert ra.bearing_deg == pytest.approx(rb.bearing_deg, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    pts=st.lists(st.tuples(st.floats(9.5, 12.5), st.floats(39.5, 42.5)), min_size=1, max_size=20),
    k=st.integers(1, 4),
    category=st.sampled_from([None, "fire", "noise"]),
)
def test_route_many_equals_route(
    router: Router, pts: list[tuple[float, float]], k: int, category: str | None
) -> None:
    lon, lat = (np.array(v) for v in zip(*pts, strict=True))
    bulk = router.route_many(lon, lat, k=k)
    for i, result in enumerate(router.results(bulk, category=category)):
        assert_same_route(result, router.route(lon[i], lat[i], k=k, category=category))


def test_result_at_uses_the_bulk_snapshot(tmp_path: Path) -> None:
    first = Router.from_profile(write_city(tmp_path / "one"))
    second = build_snapshot(load_profile(write_city(tmp_path / "two", edition=2)))
    bulk = first.route_many([11.95], [40.05], k=1)
    old = first.swap(second)
    assert first.snapshot is second and old is not second
    before = first.result_at(bulk, 0)
    assert before.zones["kelurahan"].version == old.versions["kelurahan"]
    assert before.responders["fire_station"][0].facility_id == "F1"
    after = first.route(11.95, 40.05, k=1)
    assert after.zones["kelurahan"].version == second.versions["kelurahan"]
    assert after.responders["fire_station"][0].facility_id == "F4"


def test_swap_is_atomic(tmp_path: Path) -> None:
    snaps = [
        build_snapshot(load_profile(write_city(tmp_path / f"e{e}", edition=e))) for e in (1, 2)
    ]
    assert snaps[0].versions["kelurahan"] != snaps[1].versions["kelurahan"]
    version_sets = [set(s.versions.values()) for s in snaps]
    router = Router(snaps[0])
    stop = threading.Event()
    errors: list[str] = []
    seen = [0, 0]

    def reader() -> None:
        while not stop.is_set():
            result = router.route(11.95, 40.05, k=1)
            versions = {z.version for z in result.zones.values()}
            nearest = result.responders["fire_station"][0].facility_id
            edition = 0 if versions <= version_sets[0] else 1
            seen[edition] += 1
            if not versions <= version_sets[edition] or nearest != ("F1", "F4")[edition]:
                errors.append(f"mixed snapshot: {versions} {nearest}")

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 1.0
    swaps = 0
    while time.monotonic() < deadline or min(seen) < 5:
        router.swap(snaps[swaps % 2])
        swaps += 1
        time.sleep(0.0005)
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    with pytest.raises(TypeError):
        router.swap("not a snapshot")  # type: ignore[arg-type]


def test_circle_is_metric() -> None:
    disk = circle(10.5, 40.5, 1000.0)
    assert disk.is_valid and disk.contains(shapely.Point(10.5, 40.5))
    from pyproj import Geod

    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(disk)
    assert abs(area) == pytest.approx(math.pi * 1000.0**2, rel=0.01)
    with pytest.raises(InvalidGeometryError, match="radius_m"):
        circle(10.5, 40.5, -1.0)
    with pytest.raises(InvalidCoordinatesError):
        circle(10.5, 140.5, 10.0)


def test_route_area(router: Router) -> None:
    # Centred on the K1|K2 edge: about two halves; the larger share is primary.
    area = router.route_area(circle(11.0, 40.5, 2000.0), category="fire")
    shares = area.overlaps["kelurahan"]
    assert sorted(s.zone_id for s in shares) == ["K1", "K2"]
    assert shares[0].share >= shares[1].share
    assert sum(s.share for s in shares) == pytest.approx(1.0, abs=1e-6)
    kel = area.route.zones["kelurahan"]
    assert kel.zone_id == shares[0].zone_id and kel.status == ZoneStatus.NEAR_BOUNDARY
    assert [c.zone_id for c in kel.candidates] == [s.zone_id for s in shares]
    assert area.route.category is not None and list(area.route.responders) == ["fire_station"]
    # Mostly in K4: K4 is primary whatever the representative point says.
    mostly = router.route_area(circle(11.01, 41.5, 3000.0))
    assert mostly.route.zones["kelurahan"].zone_id == "K4"
    assert mostly.overlaps["kelurahan"][0].share > 0.5
    inside = router.route_area(circle(10.5, 40.5, 100.0))
    assert inside.route.zones["kelurahan"].status == ZoneStatus.INSIDE
    assert inside.route.warnings == []


class TiedOverlaps:
    """A zone index whose overlaps are two equal shares, larger id first."""

    def __init__(self, index: object) -> None:
        self.index = index

    def __getattr__(self, name: str) -> object:
        return getattr(self.index, name)

    def overlaps(self, geometry: object) -> list[ZoneShare]:
        return [ZoneShare("K2", None, 0.5, 1.0), ZoneShare("K1", None, 0.5, 1.0)]


def test_route_area_ties_go_to_smallest_id(router: Router) -> None:
    snap = router.snapshot
    tied = dataclasses.replace(
        snap, zone_indexes={k: TiedOverlaps(v) for k, v in snap.zone_indexes.items()}
    )
    area = Router(tied).route_area(circle(11.0, 40.5, 2000.0))
    assert area.route.zones["kelurahan"].zone_id == "K1"
    assert [s.zone_id for s in area.overlaps["kelurahan"]] == ["K1", "K2"]


def test_route_area_outside_and_invalid(router: Router) -> None:
    outside = router.route_area(circle(0.0, 0.0, 100.0))
    assert outside.route.warnings[0] == Warning.OUTSIDE_COVERAGE
    assert all(not v for v in outside.overlaps.values())
    with pytest.raises(InvalidGeometryError, match="Polygon"):
        router.route_area(shapely.Point(10.5, 40.5))  # type: ignore[arg-type]
    with pytest.raises(InvalidGeometryError, match="not valid"):
        router.route_area(shapely.Polygon([(10, 40), (11, 41), (11, 40), (10, 41)]))
    with pytest.raises(InvalidGeometryError, match="lon/lat range"):
        router.route_area(shapely.box(500000, 4400000, 501000, 4401000))


# -- the demo city ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(demo_profile_path: Path, request: pytest.FixtureRequest) -> Router:
    if not demo_profile_path.exists():
        pytest.skip("demo city not generated yet")
    return request.getfixturevalue("demo_router")


def test_demo_every_kelurahan_routes_home(demo: Router) -> None:
    snap = demo.snapshot
    kel = snap.layers["kelurahan"]
    points = shapely.point_on_surface(kel.geometries)
    lon, lat = shapely.get_x(points), shapely.get_y(points)
    bulk = demo.route_many(lon, lat)
    got = kel.ids[bulk.layers["kelurahan"].primary]
    assert (got == kel.ids).all()
    kec = snap.layers["kecamatan"]
    kec_got = kec.ids[bulk.layers["kecamatan"].primary]
    expected_parent = np.array([snap.parent_of("kelurahan", k) for k in kel.ids], dtype=object)
    assert (kec_got == expected_parent).all()
    for i in range(0, len(kel.ids), 15):  # and the one-point path agrees
        result = demo.route(float(lon[i]), float(lat[i]))
        assert result.zones["kelurahan"].zone_id == kel.ids[i]
        assert result.zones["kecamatan"].zone_id == expected_parent[i]


def test_demo_categories_and_swap_warning(demo: Router) -> None:
    x0, y0, x1, y1 = demo.snapshot.coverage_bounds
    lon, lat = (x0 + x1) / 2, (y0 + y1) / 2
    fire = demo.route(lon, lat, category="fire")
    assert list(fire.responders) == ["fire_station"] and len(fire.responders["fire_station"]) == 3
    assert set(demo.route(lon, lat).responders) == set(demo.snapshot.facilities)
    with pytest.raises(InvalidCoordinatesError) as info:
        demo.route(lat, lon)  # Indonesia: latitude first makes an invalid latitude
    assert info.value.detail.get("possible_axis_swap") is True
    bulk = demo.route_many([lat], [lon])
    assert bulk.valid.tolist() == [False] and bulk.axis_swap.tolist() == [True]


def test_demo_route_many_equals_route(demo: Router) -> None:
    x0, y0, x1, y1 = demo.snapshot.coverage_bounds
    rng = np.random.default_rng(11)
    lon = rng.uniform(x0 - 0.01, x1 + 0.01, 60)
    lat = rng.uniform(y0 - 0.01, y1 + 0.01, 60)
    bulk = demo.route_many(lon, lat, k=3)
    for i, result in enumerate(demo.results(bulk)):
        assert_same_route(result, demo.route(float(lon[i]), float(lat[i]), k=3))


def test_route_without_lookup_one_gives_the_same_answer(router: Router) -> None:
    """The scalar zone lookup (ZoneIndex.lookup_one) and the array fallback agree."""
    snap = router.snapshot
    plain = dataclasses.replace(snap, _point_layers=())
    object.__setattr__(
        plain,
        "_point_layers",
        tuple(dataclasses.replace(layer, lookup_one=None) for layer in plain._point_layers),
    )
    fallback = Router(plain)
    rng = np.random.default_rng(5)
    for lon, lat in zip(rng.uniform(9.8, 12.2, 40), rng.uniform(39.8, 42.2, 40), strict=True):
        for k in (1, 3):
            a = router.route(float(lon), float(lat), k=k)
            b = fallback.route(float(lon), float(lat), k=k)
            assert a.zones == b.zones and a.responders == b.responders
            assert a.warnings == b.warnings


def test_route_many_with_the_helper_thread_equals_serial(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geo_router.city.router as router_module

    rng = np.random.default_rng(9)
    lon = rng.uniform(9.5, 12.5, 300)
    lat = rng.uniform(39.5, 42.5, 300)
    lon[7] = np.nan
    serial = router.route_many(lon, lat, k=2)
    monkeypatch.setattr(router_module, "PARALLEL_MIN_POINTS", 1)
    monkeypatch.setattr(router_module, "_CPUS", 2)
    threaded = router.route_many(lon, lat, k=2)
    assert list(threaded.nearest) == list(serial.nearest)
    for kind, got in threaded.nearest.items():
        np.testing.assert_array_equal(got.index, serial.nearest[kind].index)
        np.testing.assert_array_equal(got.distance_m, serial.nearest[kind].distance_m)
    for name, got in threaded.layers.items():
        np.testing.assert_array_equal(got.primary, serial.layers[name].primary)
    assert threaded.reasons == serial.reasons and threaded.reasons[7] is not None


def test_route_many_float_fast_path_matches_the_checker(router: Router) -> None:
    """Numeric input that is all valid skips the per-row checker; the answer is the same."""
    lon = np.array([10.25, 11.5, 10.5])
    lat = np.array([40.25, 41.5, 41.5])
    fast = router.route_many(lon, lat)
    slow = router.route_many(lon.astype(object), lat.astype(object))
    assert fast.valid.tolist() == slow.valid.tolist() == [True, True, True]
    assert fast.reasons == slow.reasons == [None, None, None]
    np.testing.assert_array_equal(
        fast.layers["kelurahan"].primary, slow.layers["kelurahan"].primary
    )
    mixed = router.route_many(np.array([10.25, np.inf]), np.array([40.25, 40.0]))
    assert mixed.valid.tolist() == [True, False] and "infinite" in mixed.reasons[1]


def test_route_hits_are_route_in_rows(demo_router: Router) -> None:
    hits = demo_router.route_hits(107.6, -6.9, category="fire", k=2)
    result = demo_router.route(107.6, -6.9, category="fire", k=2)
    snap = hits.snapshot
    assert snap is demo_router.snapshot
    assert [name for name, *_ in hits.zones] == list(result.zones)
    for name, primary, _status, cands in hits.zones:
        _version, ids, _names = snap.zone_labels(name)
        assert ids[primary] == result.zones[name].zone_id
        assert [ids[z] for z, _d in cands] == [c.zone_id for c in result.zones[name].candidates]
    for kind, ranked in hits.responders:
        ids, _names, _lons, _lats = snap.facility_labels(kind)
        assert [ids[j] for j, _d, _b in ranked] == [r.facility_id for r in result.responders[kind]]
    assert hits.category == result.category
    assert hits.warnings == result.warnings


def test_route_hits_raise_like_route(demo_router: Router) -> None:
    with pytest.raises(InvalidCoordinatesError):
        demo_router.route_hits(float("nan"), -6.9)
    with pytest.raises(UnknownCategoryError):
        demo_router.route_hits(107.6, -6.9, category="no-such")


def test_route_many_hands_the_zones_over_before_the_facilities(demo_router: Router) -> None:
    lon = np.array([107.6, np.nan, 107.61] * 1000)
    lat = np.array([-6.9, -6.9, -6.91] * 1000)
    seen: list[tuple[dict, np.ndarray]] = []
    bulk = demo_router.route_many(lon, lat, on_zones=lambda z, v: seen.append((z, v)))
    ((zones, valid),) = seen
    assert list(zones) == list(bulk.layers)
    assert all(zones[name] is bulk.layers[name] for name in zones)
    assert valid.tolist() == bulk.valid.tolist()
