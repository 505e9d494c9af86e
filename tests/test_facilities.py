from __future__ import annotations

import threading
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_router.city.coords import geodesic_inverse
from geo_router.city.facilities import FacilitySet, load_facilities
from geo_router.city.nearest import SPHERE_SLACK, DynamicNearestIndex, StaticNearestIndex
from geo_router.city.profile import FacilitySpec
from geo_router.errors import InvalidCoordinatesError, ProfileError


def make_set(lon: list[float], lat: list[float], ids: list[str] | None = None) -> FacilitySet:
    ids = ids if ids is not None else [f"F{i:04d}" for i in range(len(lon))]
    return FacilitySet(
        type="station",
        version="test",
        ids=np.array(ids, dtype=object),
        names=np.array([f"name {i}" for i in ids], dtype=object),
        lon=np.asarray(lon, dtype=np.float64),
        lat=np.asarray(lat, dtype=np.float64),
        properties=pd.DataFrame(index=range(len(ids))),
    )


def brute_force(
    ids: list[str], flon: np.ndarray, flat: np.ndarray, qlon: np.ndarray, qlat: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and metres of the k nearest by geodesic distance, ties by id."""
    dist, _ = geodesic_inverse(qlon[:, None], qlat[:, None], flon[None, :], flat[None, :])
    out_ids = np.full((len(qlon), k), None, dtype=object)
    out_d = np.full((len(qlon), k), np.nan)
    for i in range(len(qlon)):
        ranked = sorted(zip(dist[i].tolist(), ids, strict=True))[:k]
        for j, (d, fid) in enumerate(ranked):
            out_ids[i, j], out_d[i, j] = fid, d
    return out_ids, out_d


def ids_of(index_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.full(rows.shape, None, dtype=object)
    found = rows >= 0
    out[found] = index_ids[rows[found]]
    return out


def assert_same_ranking(lookup, index_ids, expect_ids, expect_d) -> None:  # type: ignore[no-untyped-def]
    got = ids_of(np.asarray(index_ids, dtype=object), lookup.index)
    assert (got == expect_ids).all(), (got, expect_ids)
    np.testing.assert_allclose(lookup.distance_m, expect_d, rtol=1e-12, atol=1e-6)
    assert (np.isnan(lookup.bearing_deg) == (lookup.index < 0)).all()
    found = lookup.bearing_deg[lookup.index >= 0]
    assert ((found >= 0) & (found < 360)).all()


lons = st.floats(-180, 180, allow_nan=False)
lats = st.floats(-90, 90, allow_nan=False)
# Near the antimeridian and the poles, where planar shortcuts break.
edge_lons = st.one_of(lons, st.floats(179, 180), st.floats(-180, -179))
edge_lats = st.one_of(lats, st.floats(88, 90), st.floats(-90, -88))
points = st.tuples(edge_lons, edge_lats)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    facilities=st.lists(points, min_size=1, max_size=40),
    queries=st.lists(points, min_size=1, max_size=15),
    k=st.integers(1, 6),
)
def test_static_and_dynamic_equal_brute_force(
    facilities: list[tuple[float, float]], queries: list[tuple[float, float]], k: int
) -> None:
    flon, flat = (np.array(v) for v in zip(*facilities, strict=True))
    qlon, qlat = (np.array(v) for v in zip(*queries, strict=True))
    fs = make_set(flon.tolist(), flat.tolist())
    ids = fs.ids.tolist()
    expect_ids, expect_d = brute_force(ids, flon, flat, qlon, qlat, k)
    static = StaticNearestIndex(fs)
    assert_same_ranking(static.nearest(qlon, qlat, k), fs.ids, expect_ids, expect_d)
    one = static.nearest(qlon[:1], qlat[:1], k)  # single-point fast path
    assert_same_ranking(one, fs.ids, expect_ids[:1], expect_d[:1])
    dynamic = DynamicNearestIndex(fs)
    assert_same_ranking(dynamic.nearest(qlon, qlat, k), dynamic.ids, expect_ids, expect_d)


@settings(max_examples=25, deadline=None)
@given(
    centre=points,
    spread=st.floats(1e-4, 2.0),
    n=st.integers(2, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_clustered_sets_equal_brute_force(
    centre: tuple[float, float], spread: float, n: int, seed: int
) -> None:
    """Many facilities close together: the sphere/ellipsoid filter margin is what matters."""
    rng = np.random.default_rng(seed)
    flon = np.clip(centre[0] + rng.normal(0, spread, n), -180, 180)
    flat = np.clip(centre[1] + rng.normal(0, spread, n), -90, 90)
    qlon = np.clip(centre[0] + rng.normal(0, spread, 20), -180, 180)
    qlat = np.clip(centre[1] + rng.normal(0, spread, 20), -90, 90)
    fs = make_set(flon.tolist(), flat.tolist())
    expect_ids, expect_d = brute_force(fs.ids.tolist(), flon, flat, qlon, qlat, 5)
    assert_same_ranking(StaticNearestIndex(fs).nearest(qlon, qlat, 5), fs.ids, expect_ids, expect_d)


@settings(max_examples=25, deadline=None)
@given(centre=points, n=st.integers(2, 40), seed=st.integers(0, 2**32 - 1), k=st.integers(1, 5))
def test_centimetre_spacing_equals_brute_force(
    centre: tuple[float, float], n: int, seed: int, k: int
) -> None:
    """Facilities centimetres apart: the chord arithmetic must not lose the order."""
    rng = np.random.default_rng(seed)
    flon = np.clip(centre[0] + rng.integers(-3, 4, n) * 1e-7, -180, 180)
    flat = np.clip(centre[1] + rng.integers(-3, 4, n) * 1e-7, -90, 90)
    qlon = np.clip(centre[0] + rng.normal(0, 2e-7, 3), -180, 180)
    qlat = np.clip(centre[1] + rng.normal(0, 2e-7, 3), -90, 90)
    fs = make_set(flon.tolist(), flat.tolist())
    expect_ids, expect_d = brute_force(fs.ids.tolist(), flon, flat, qlon, qlat, k)
    static = StaticNearestIndex(fs)
    assert_same_ranking(static.nearest(qlon, qlat, k), fs.ids, expect_ids, expect_d)
    for i in range(3):
        assert_same_ranking(
            static.nearest(qlon[i : i + 1], qlat[i : i + 1], k),
            fs.ids,
            expect_ids[i : i + 1],
            expect_d[i : i + 1],
        )
    dynamic = DynamicNearestIndex(fs)
    assert_same_ranking(dynamic.nearest(qlon, qlat, k), dynamic.ids, expect_ids, expect_d)


def test_exactness_margin_covers_the_ellipsoid() -> None:
    # a / sqrt(1 - e^2) over a (1 - e^2): the extreme ratio of WGS84 radii of curvature
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    assert (a / np.sqrt(1 - e2)) / (a * (1 - e2)) < SPHERE_SLACK


def test_sphere_order_differs_from_ellipsoid_order_but_result_is_exact() -> None:
    # From the equator, 1 degree east is nearer than 1.005 degree north on a sphere, but on
    # WGS84 the meridian degree is shorter: the north facility is the nearer one.
    fs = make_set([1.0, 0.0], [0.0, 1.005], ids=["east", "north"])
    d, _ = geodesic_inverse(0.0, 0.0, fs.lon, fs.lat)
    assert d[1] < d[0]
    for index in (StaticNearestIndex(fs), DynamicNearestIndex(fs)):
        for query in (np.array([0.0]), np.array([0.0, 0.0])):  # single and bulk paths
            lookup = index.nearest(query, query * 0, 1)
            assert (lookup.index[:, 0] == 1).all()


def test_ties_ordered_by_id_and_padding() -> None:
    fs = make_set([10.0, 10.0, 10.0, 11.0], [5.0, 5.0, 5.0, 5.0], ids=["c", "a", "b", "z"])
    for index in (StaticNearestIndex(fs), DynamicNearestIndex(fs)):
        lookup = index.nearest(np.array([10.0, 10.0]), np.array([5.0, 5.0]), 6)
        got = ids_of(np.array(["c", "a", "b", "z"], dtype=object), lookup.index)
        assert got[0].tolist() == ["a", "b", "c", "z", None, None]
        assert lookup.index[0, 4:].tolist() == [-1, -1]
        assert np.isnan(lookup.distance_m[0, 4:]).all()
        assert lookup.distance_m[0, :3].tolist() == [0.0, 0.0, 0.0]
        # k = 2 cuts inside the tie: the smallest ids win
        two = index.nearest(np.array([10.0]), np.array([5.0]), 2)
        assert ids_of(np.array(["c", "a", "b", "z"], dtype=object), two.index)[0].tolist() == [
            "a",
            "b",
        ]


def test_bearing_and_distance() -> None:
    fs = make_set([0.0, 0.0], [1.0, -1.0], ids=["n", "s"])
    lookup = StaticNearestIndex(fs).nearest(np.array([0.0, 0.0]), np.array([0.0, 0.0]), 2)
    assert lookup.bearing_deg[0].tolist() == pytest.approx([0.0, 180.0])
    assert lookup.distance_m[0, 0] == pytest.approx(110574.4, abs=1)


def test_empty_set() -> None:
    fs = make_set([], [])
    for index in (StaticNearestIndex(fs), DynamicNearestIndex(fs)):
        lookup = index.nearest(np.array([1.0, 2.0]), np.array([1.0, 2.0]), 3)
        assert lookup.index.shape == (2, 3)
        assert (lookup.index == -1).all() and np.isnan(lookup.distance_m).all()


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be"):
        StaticNearestIndex(make_set([0.0], [0.0])).nearest(np.array([0.0]), np.array([0.0]), 0)


def test_bulk_many_points_equal_brute_force() -> None:
    rng = np.random.default_rng(7)
    flon, flat = rng.uniform(107.5, 107.7, 200), rng.uniform(-7.0, -6.8, 200)
    qlon, qlat = rng.uniform(107.4, 107.8, 3000), rng.uniform(-7.1, -6.7, 3000)
    fs = make_set(flon.tolist(), flat.tolist())
    expect_ids, expect_d = brute_force(fs.ids.tolist(), flon, flat, qlon, qlat, 3)
    assert_same_ranking(StaticNearestIndex(fs).nearest(qlon, qlat, 3), fs.ids, expect_ids, expect_d)


@settings(max_examples=30, deadline=None)
@given(
    facilities=st.lists(points, min_size=2, max_size=25),
    ops=st.lists(
        st.tuples(st.sampled_from(["remove", "add", "move"]), st.integers(0, 30), points),
        max_size=12,
    ),
    queries=st.lists(points, min_size=1, max_size=8),
    k=st.integers(1, 4),
)
def test_dynamic_after_changes_equals_brute_force(
    facilities: list[tuple[float, float]],
    ops: list[tuple[str, int, tuple[float, float]]],
    queries: list[tuple[float, float]],
    k: int,
) -> None:
    flon, flat = (list(v) for v in zip(*facilities, strict=True))
    fs = make_set(flon, flat)
    dynamic = DynamicNearestIndex(fs)
    live = {fid: (x, y) for fid, x, y in zip(fs.ids.tolist(), flon, flat, strict=True)}
    for op, n, (x, y) in ops:
        fid = f"F{n:04d}"
        if op == "remove" and fid in live:
            dynamic.remove(fid)
            del live[fid]
        elif op == "add" and fid not in live:
            dynamic.add(fid, x, y, name="new")
            live[fid] = (x, y)
        elif op == "move" and fid in live:
            dynamic.move(fid, x, y)
            live[fid] = (x, y)
    assert len(dynamic) == len(live)
    qlon, qlat = (np.array(v) for v in zip(*queries, strict=True))
    lookup = dynamic.nearest(qlon, qlat, k)
    if not live:
        assert (lookup.index == -1).all()
        return
    ids = sorted(live)
    expect_ids, expect_d = brute_force(
        ids,
        np.array([live[i][0] for i in ids]),
        np.array([live[i][1] for i in ids]),
        qlon,
        qlat,
        k,
    )
    assert_same_ranking(lookup, dynamic.ids, expect_ids, expect_d)


def test_dynamic_mutation_errors() -> None:
    dynamic = DynamicNearestIndex(make_set([0.0, 1.0], [0.0, 1.0], ids=["a", "b"]))
    with pytest.raises(KeyError, match="no facility 'x'"):
        dynamic.remove("x")
    with pytest.raises(ValueError, match="already exists"):
        dynamic.add("a", 3.0, 3.0)
    with pytest.raises(InvalidCoordinatesError):
        dynamic.add("c", 200.0, 3.0)
    dynamic.remove("a")
    assert not dynamic.is_active("a")
    with pytest.raises(KeyError):
        dynamic.move("a", 1.0, 1.0)
    row = dynamic.add("a", 5.0, 5.0)
    assert row == 0 and dynamic.location(0) == (5.0, 5.0)


def test_dynamic_is_thread_safe() -> None:
    rng = np.random.default_rng(3)
    fs = make_set(rng.uniform(0, 1, 50).tolist(), rng.uniform(0, 1, 50).tolist())
    dynamic = DynamicNearestIndex(fs)
    errors: list[BaseException] = []

    def mutate() -> None:
        try:
            for step in range(200):
                fid = f"F{step % 50:04d}"
                dynamic.move(fid, float(rng.uniform(0, 1)), float(rng.uniform(0, 1)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def query() -> None:
        try:
            for _ in range(100):
                lookup = dynamic.nearest(np.array([0.5]), np.array([0.5]), 3)
                assert (lookup.index >= 0).all()
                assert (np.diff(lookup.distance_m[0]) >= 0).all()
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=mutate)] + [threading.Thread(target=query) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


# -- loading -----------------------------------------------------------------------------


def spec(path: Path, **kw: str | None) -> FacilitySpec:
    base: dict[str, str | None] = {"id_field": "id", "name_field": "name"}
    if path.suffix == ".csv":
        base |= {"lon_field": "lon", "lat_field": "lat"}
    return FacilitySpec(type="fire_station", path=path, **(base | kw))  # type: ignore[arg-type]


def test_load_csv_keeps_ids_as_text(tmp_path: Path) -> None:
    path = tmp_path / "fs.csv"
    path.write_text("id,name,lon,lat,phone\n007,Alpha,107.6,-6.9,112\n010,,107.7,-6.8,113\n")
    fs = load_facilities(spec(path))
    assert fs.ids.tolist() == ["007", "010"]
    assert fs.names is not None and fs.names.tolist() == ["Alpha", None]
    assert fs.lon.dtype == np.float64 and fs.lat.tolist() == [-6.9, -6.8]
    assert list(fs.properties.columns) == ["id", "name", "lon", "lat", "phone"]
    assert len(fs.version) == 12
    assert len(fs) == 2


def test_load_csv_bad_coordinates_names_row(tmp_path: Path) -> None:
    path = tmp_path / "fs.csv"
    path.write_text("id,name,lon,lat\na,A,107.6,-6.9\nb,B,107.7,-96.8\n")
    with pytest.raises(ProfileError, match=r"fs\.csv: row 1 \(line 3\), id 'b'.*latitude"):
        load_facilities(spec(path))
    path.write_text("id,name,lon,lat\na,A,abc,-6.9\n")
    with pytest.raises(ProfileError, match=r"row 0.*longitude is"):
        load_facilities(spec(path))


def test_load_csv_missing_field_and_file(tmp_path: Path) -> None:
    path = tmp_path / "fs.csv"
    path.write_text("id,name,x,lat\na,A,107.6,-6.9\n")
    with pytest.raises(ProfileError, match=r"fs\.csv: lon_field 'lon' is not a column"):
        load_facilities(spec(path))
    with pytest.raises(ProfileError, match="file not found"):
        load_facilities(spec(tmp_path / "none.csv"))


def test_load_duplicate_and_missing_ids(tmp_path: Path) -> None:
    path = tmp_path / "fs.csv"
    path.write_text("id,name,lon,lat\na,A,107.6,-6.9\na,B,107.7,-6.8\n")
    with pytest.raises(ProfileError, match="duplicate id 'a'"):
        load_facilities(spec(path))
    path.write_text("id,name,lon,lat\na,A,107.6,-6.9\n,B,107.7,-6.8\n")
    with pytest.raises(ProfileError, match="row 1: id is empty"):
        load_facilities(spec(path))


def test_load_geojson_and_reprojected_gpkg(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"id": [1, 2], "name": ["A", "B"]},
        geometry=[shapely.Point(107.6, -6.9), shapely.Point(107.7, -6.8)],
        crs="EPSG:4326",
    )
    gdf.to_file(tmp_path / "fs.geojson", driver="GeoJSON")
    fs = load_facilities(spec(tmp_path / "fs.geojson"))
    assert fs.ids.tolist() == ["1", "2"]
    np.testing.assert_allclose(fs.lon, [107.6, 107.7])
    gdf.to_crs("EPSG:32748").to_file(tmp_path / "fs.gpkg", driver="GPKG")
    fs = load_facilities(spec(tmp_path / "fs.gpkg"))
    np.testing.assert_allclose(fs.lon, [107.6, 107.7], atol=1e-9)
    np.testing.assert_allclose(fs.lat, [-6.9, -6.8], atol=1e-9)


def test_load_refuses_non_points(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"id": ["a"], "name": ["A"]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4326"
    )
    gdf.to_file(tmp_path / "fs.geojson", driver="GeoJSON")
    with pytest.raises(ProfileError, match=r"row 0.*must be a Point, got Polygon"):
        load_facilities(spec(tmp_path / "fs.geojson"))


def test_demo_city_facilities(demo_profile_path: Path) -> None:
    if not demo_profile_path.exists():
        pytest.skip("demo city not generated yet")
    from geo_router.city.profile import load_profile

    for facility in load_profile(demo_profile_path).facilities:
        fs = load_facilities(facility)
        assert len(fs) > 0 and fs.ids.dtype == object
        index = StaticNearestIndex(fs)
        lookup = index.nearest(fs.lon, fs.lat, 1)
        assert (fs.ids[lookup.index[:, 0]] == fs.ids).all()  # each is its own nearest


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 60),
    dup=st.integers(0, 20),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_bulk_with_ties_takes_the_wide_path_and_stays_exact(
    n: int, dup: int, k: int, seed: int
) -> None:
    """Co-located facilities (ties) and near-equal distances send rows to the wide re-rank."""
    rng = np.random.default_rng(seed)
    flon = rng.uniform(-74.1, -73.9, n)
    flat = rng.uniform(40.6, 40.8, n)
    flon = np.concatenate([flon, flon[: min(dup, n)]])  # exact duplicates: ties by id
    flat = np.concatenate([flat, flat[: min(dup, n)]])
    qlon = np.concatenate([rng.uniform(-74.15, -73.85, 400), flon[:5]])
    qlat = np.concatenate([rng.uniform(40.55, 40.85, 400), flat[:5]])
    fs = make_set(
        flon.tolist(), flat.tolist(), ids=[f"F{i:04d}" for i in rng.permutation(flon.size)]
    )
    expect_ids, expect_d = brute_force(fs.ids.tolist(), flon, flat, qlon, qlat, k)
    assert_same_ranking(StaticNearestIndex(fs).nearest(qlon, qlat, k), fs.ids, expect_ids, expect_d)


def test_bearings_stay_below_360() -> None:
    from geo_router.city.nearest import _bearing

    assert _bearing(-1e-17) == 0.0
    assert _bearing(-90.0) == 270.0
    assert _bearing(359.5) == 359.5


def test_split_geodesics_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large bulk queries split the geodesics over two threads; the answer does not change."""
    import geo_router.city.nearest as facilities_module

    rng = np.random.default_rng(3)
    flon, flat = rng.uniform(107.5, 107.7, 40), rng.uniform(-7.0, -6.8, 40)
    qlon, qlat = rng.uniform(107.4, 107.8, 999), rng.uniform(-7.1, -6.7, 999)
    index = StaticNearestIndex(make_set(flon.tolist(), flat.tolist()))
    one_thread = index.nearest(qlon, qlat, 2)
    monkeypatch.setattr(facilities_module, "SPLIT_GEODESICS_MIN", 1)
    monkeypatch.setattr(facilities_module, "_CPUS", 2)
    split = index.nearest(qlon, qlat, 2)
    np.testing.assert_array_equal(split.index, one_thread.index)
    np.testing.assert_array_equal(split.distance_m, one_thread.distance_m)
    np.testing.assert_array_equal(split.bearing_deg, one_thread.bearing_deg)


def _grid_off_answer(index: StaticNearestIndex, lon: float, lat: float, k: int) -> list:  # type: ignore[type-arg]
    """nearest_one through the plain path (numpy scan), for comparison with the grid."""
    index._grid_on = False
    try:
        return index.nearest_one(lon, lat, k)
    finally:
        index._grid_on = index._grid.usable


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    centre=st.tuples(st.floats(-170, 170), st.floats(-75, 75)),
    spread=st.sampled_from([1e-5, 1e-3, 0.01, 0.05, 0.3]),
    n=st.integers(2, 80),
    dup=st.integers(0, 10),
    k=st.integers(1, 6),
    clustered=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_single_point_grid_equals_brute_force(
    centre: tuple[float, float],
    spread: float,
    n: int,
    dup: int,
    k: int,
    clustered: bool,
    seed: int,
) -> None:
    """The cell-candidate grid gives the same rows, metres and bearings as the plain path."""
    rng = np.random.default_rng(seed)
    if clustered:  # a few tight clusters: many near-equal distances
        heads = rng.normal(0, spread, (3, 2))
        pick = rng.integers(0, 3, n)
        offsets = heads[pick] + rng.normal(0, spread / 50, (n, 2))
    else:
        offsets = rng.uniform(-spread, spread, (n, 2))
    flon = centre[0] + offsets[:, 0]
    flat = centre[1] + offsets[:, 1]
    flon = np.concatenate([flon, flon[: min(dup, n)]])  # exact duplicates: ties by id
    flat = np.concatenate([flat, flat[: min(dup, n)]])
    fs = make_set(
        flon.tolist(), flat.tolist(), ids=[f"F{i:04d}" for i in rng.permutation(flon.size)]
    )
    index = StaticNearestIndex(fs)
    assert index._grid.usable
    grid = index._grid
    # Inside and around the set, on facilities, and exactly on cell corners and edges.
    qlon = centre[0] + rng.uniform(-3 * spread, 3 * spread, 25)
    qlat = centre[1] + rng.uniform(-3 * spread, 3 * spread, 25)
    cx = np.floor((qlon[:5] - grid.lon0) / grid.dlon)
    cy = np.floor((qlat[:5] - grid.lat0) / grid.dlat)
    corner_lon, corner_lat = grid.lon0 + cx * grid.dlon, grid.lat0 + cy * grid.dlat
    qlon = np.concatenate([qlon, flon[:5], corner_lon, corner_lon, qlon[5:10]])
    qlat = np.concatenate([qlat, flat[:5], corner_lat, qlat[:5], corner_lat[:5]])
    expect_ids, expect_d = brute_force(fs.ids.tolist(), flon, flat, qlon, qlat, k)
    for i, (lon, lat) in enumerate(zip(qlon.tolist(), qlat.tolist(), strict=True)):
        got = index.nearest_one(lon, lat, k)
        assert got == _grid_off_answer(index, lon, lat, k)
        assert [fs.ids[j] for j, _, _ in got] == [e for e in expect_ids[i] if e is not None]
        np.testing.assert_allclose(
            [d for _, d, _ in got], expect_d[i][: len(got)], rtol=1e-12, atol=1e-6
        )
    if k < flon.size and k <= 5:
        assert grid.cells, "the grid was not used"


def test_grid_stays_off_near_the_poles_and_outside_its_box() -> None:
    polar = StaticNearestIndex(make_set([10.0, 10.1, 10.2], [85.0, 85.1, 85.2]))
    assert not polar._grid.usable
    assert sorted(j for j, _, _ in polar.nearest_one(10.05, 85.05, 2)) == [0, 1]
    city = StaticNearestIndex(make_set([107.6, 107.62, 107.64, 107.66], [-6.9, -6.91, -6.92, -6.9]))
    far = city.nearest_one(120.0, 10.0, 2)  # off the grid: the plain path answers
    assert far == _grid_off_answer(city, 120.0, 10.0, 2)
    assert not city._grid.cells
    assert city.nearest_one(107.61, -6.905, 6) == _grid_off_answer(city, 107.61, -6.905, 6)


def test_grid_cache_full_takes_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import geo_router.city.nearest as facilities

    monkeypatch.setattr(facilities, "_GRID_MAX_CELLS", 0)
    city = StaticNearestIndex(make_set([107.6, 107.62, 107.64, 107.66], [-6.9, -6.91, -6.92, -6.9]))
    got = city.nearest_one(107.61, -6.905, 2)
    assert not city._grid.cells
    assert got == _grid_off_answer(city, 107.61, -6.905, 2)
