"""ZoneIndex against a brute-force shapely reference, on small synthetic coverages."""

from __future__ import annotations

import os

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_router.city.coords import get_transformer, local_utm
from geo_router.city.layers import ZoneLayer, load_layer, make_layer
from geo_router.city.models import STATUS_CODES, LayerLookup, ZoneStatus
from geo_router.city.profile import load_profile
from geo_router.city.validation import to_utm
from geo_router.city.zone_index import ZoneIndex, _round_um
from geo_router.errors import InvalidGeometryError

SETTINGS = settings(
    # GEO_ROUTER_FUZZ_EXAMPLES=500 for a long local fuzz run
    max_examples=int(os.environ.get("GEO_ROUTER_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BORDERLINE_M = 1e-6  # brute force and the index may differ in the last bits of a distance

# ---------------------------------------------------------------------------- reference


def brute_force(layer: ZoneLayer, lon: np.ndarray, lat: np.ndarray, tolerance_m: float):
    """Per point: (primary, status, [(zone, dist)...]) by the documented rules, one by one."""
    geoms = layer.geometries
    bounds = shapely.total_bounds(geoms)
    utm = local_utm(bounds[[0, 2]], bounds[[1, 3]])
    boundaries_m = shapely.boundary(to_utm(geoms, utm))
    points = shapely.points(lon, lat)
    points_m = to_utm(points, utm)
    rank = {z: r for r, z in enumerate(sorted(range(len(geoms)), key=lambda z: layer.ids[z]))}
    out = []
    borderline = np.zeros(len(lon), dtype=bool)
    for i, (pt, pt_m) in enumerate(zip(points, points_m, strict=True)):
        covering = [z for z, g in enumerate(geoms) if shapely.covers(g, pt)]
        interior = {z for z in covering if shapely.contains(geoms[z], pt)}
        primary = -1
        if covering:
            primary = min(covering, key=lambda z: (z not in interior, rank[z]))
        dist = shapely.distance(boundaries_m, pt_m)
        borderline[i] = bool(np.any(np.abs(dist - tolerance_m) < BORDERLINE_M))
        cands = [(z, 0.0) for z in covering]
        cands += [
            (z, float(d)) for z, d in enumerate(dist) if z not in covering and d <= tolerance_m
        ]
        cands.sort(key=lambda c: (c[0] != primary, round(c[1], 6), rank[c[0]]))
        status = 2 if primary < 0 else 1 if len(cands) > 1 else 0
        out.append((primary, status, cands))
    return out, borderline


def assert_matches(result: LayerLookup, expected, borderline: np.ndarray, ids: np.ndarray) -> None:
    """Compare a LayerLookup with the brute-force answers, skipping borderline distances."""
    n = len(expected)
    assert result.primary.dtype == np.int32 and result.status.dtype == np.int8
    assert result.cand_ptr.dtype == np.int64 and result.cand_zone.dtype == np.int32
    assert result.cand_dist_m.dtype == np.float64
    assert len(result.cand_ptr) == n + 1 and result.cand_ptr[0] == 0
    assert np.all(np.diff(result.cand_ptr) >= 0)
    for i, (primary, status, cands) in enumerate(expected):
        assert result.primary[i] == primary, f"point {i}: primary"
        lo, hi = result.cand_ptr[i], result.cand_ptr[i + 1]
        got = list(zip(result.cand_zone[lo:hi].tolist(), result.cand_dist_m[lo:hi], strict=True))
        if primary >= 0:
            assert got[0] == (primary, 0.0)
        # the documented order, applied to the reported distances
        assert got == sorted(got, key=lambda c: (c[0] != primary, c[1], str(ids[c[0]])))
        if borderline[i]:
            continue
        assert result.status[i] == status, f"point {i}: status"
        assert sorted(z for z, _ in got) == sorted(z for z, _ in cands), (
            f"point {i}: {got} != {cands}"
        )
        want = dict(cands)
        np.testing.assert_allclose([d for _, d in got], [want[z] for z, _ in got], atol=1e-5)


# ---------------------------------------------------------------------------- layers

ORIGINS = [(-74.0, 40.5), (107.5, -6.875), (10.25, 0.125), (-0.125, -0.25), (151.0, -33.875)]


def square_grid(
    origin: tuple[float, float], size: float, nx: int, ny: int, ids: list[str]
) -> ZoneLayer:
    """nx * ny squares of ``size`` degrees (dyadic, so edge midpoints are exact)."""
    x0, y0 = origin
    boxes = [
        shapely.box(x0 + i * size, y0 + j * size, x0 + (i + 1) * size, y0 + (j + 1) * size)
        for j in range(ny)
        for i in range(nx)
    ]
    return make_layer("grid", ids[: len(boxes)], boxes, names=[f"Z{i}" for i in ids[: len(boxes)]])


def jittered_grid(
    origin: tuple[float, float], size: float, nx: int, ny: int, jitter: np.ndarray, ids: list[str]
) -> ZoneLayer:
    """A coverage of quads over a jittered lattice (neighbours share their vertices exactly)."""
    x0, y0 = origin
    gx, gy = np.meshgrid(np.arange(nx + 1), np.arange(ny + 1), indexing="xy")
    vx = x0 + gx * size
    vy = y0 + gy * size
    inner = (gx > 0) & (gx < nx) & (gy > 0) & (gy < ny)
    vx = np.where(inner, vx + jitter[0][: ny + 1, : nx + 1] * size * 0.3, vx)
    vy = np.where(inner, vy + jitter[1][: ny + 1, : nx + 1] * size * 0.3, vy)
    polys = []
    for j in range(ny):
        for i in range(nx):
            ring = [
                (vx[j, i], vy[j, i]),
                (vx[j, i + 1], vy[j, i + 1]),
                (vx[j + 1, i + 1], vy[j + 1, i + 1]),
                (vx[j + 1, i], vy[j + 1, i]),
            ]
            polys.append(shapely.Polygon(ring))
    return make_layer("jitter", ids[: len(polys)], polys)


def probe_points(layer: ZoneLayer, rng: np.random.Generator, n_random: int) -> np.ndarray:
    """Vertices, edge midpoints, points just off edges and random points around the layer."""
    geoms = layer.geometries
    vertices = np.unique(shapely.get_coordinates(geoms), axis=0)
    rings = shapely.get_parts(shapely.boundary(geoms))
    coords, which = shapely.get_coordinates(rings, return_index=True)
    same = which[:-1] == which[1:]
    a, b = coords[:-1][same], coords[1:][same]
    mids = (a + b) / 2.0
    # a few metres off the edges, both sides, to exercise the tolerance
    normal = np.column_stack([-(b - a)[:, 1], (b - a)[:, 0]])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    offsets_m = rng.choice([-30.0, -11.0, -9.0, -4.0, 4.0, 9.0, 11.0, 30.0], size=len(mids))
    off = mids + normal * (offsets_m / 111_000.0)[:, None]
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    pad = 0.1 * max(maxx - minx, maxy - miny)
    rand = np.column_stack(
        [
            rng.uniform(minx - pad, maxx + pad, n_random),
            rng.uniform(miny - pad, maxy + pad, n_random),
        ]
    )
    return np.vstack([vertices, mids, off, rand])


ids_strategy = st.lists(
    st.one_of(st.integers(1, 999).map(str), st.text("abcXYZ_", min_size=1, max_size=3)),
    min_size=30,
    max_size=30,
    unique=True,
)


@st.composite
def coverages(draw: st.DrawFn) -> tuple[ZoneLayer, np.ndarray, float, int | None]:
    origin = draw(st.sampled_from(ORIGINS))
    size = draw(st.sampled_from([2.0**-8, 2.0**-10, 2.0**-12]))
    nx = draw(st.integers(1, 4))
    ny = draw(st.integers(1, 4))
    ids = draw(ids_strategy)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        layer = square_grid(origin, size, nx, ny, ids)
    else:
        jitter = rng.uniform(-1, 1, size=(2, ny + 1, nx + 1))
        layer = jittered_grid(origin, size, nx, ny, jitter, ids)
    if len(layer) > 1 and draw(st.booleans()):
        # drop one zone: a hole in the coverage, with outside points inside it
        keep = np.arange(len(layer)) != draw(st.integers(0, len(layer) - 1))
        layer = make_layer("holed", layer.ids[keep], layer.geometries[keep])
    points = probe_points(layer, rng, n_random=60)
    tolerance = draw(st.sampled_from([0.0, 5.0, 10.0, 25.0]))
    grid_cells = draw(st.sampled_from([None, 0, 4, 16, 64]))
    return layer, points, tolerance, grid_cells


# ---------------------------------------------------------------------------- properties


@SETTINGS
@given(coverages())
def test_lookup_equals_brute_force(case: tuple[ZoneLayer, np.ndarray, float, int | None]) -> None:
    layer, points, tolerance, grid_cells = case
    index = ZoneIndex(layer, tolerance, grid_cells=grid_cells)
    expected, borderline = brute_force(layer, points[:, 0], points[:, 1], tolerance)
    assert_matches(index.lookup(points[:, 0], points[:, 1]), expected, borderline, layer.ids)


@SETTINGS
@given(coverages())
def test_covers_any_and_axis_swap(case: tuple[ZoneLayer, np.ndarray, float, int | None]) -> None:
    layer, points, tolerance, grid_cells = case
    index = ZoneIndex(layer, tolerance, grid_cells=grid_cells)
    for lon, lat in ((points[:, 0], points[:, 1]), (points[:, 1], points[:, 0])):
        pts = shapely.points(lon, lat)
        expected = np.array([any(shapely.covers(g, p) for g in layer.geometries) for p in pts])
        np.testing.assert_array_equal(index.covers_any(lon, lat), expected)


@SETTINGS
@given(coverages(), st.integers(0, 2**32 - 1))
def test_grid_and_exact_paths_agree(
    case: tuple[ZoneLayer, np.ndarray, float, int | None], seed: int
) -> None:
    layer, points, tolerance, _ = case
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = shapely.total_bounds(layer.geometries)
    extra = np.column_stack([rng.uniform(minx, maxx, 2000), rng.uniform(miny, maxy, 2000)])
    pts = np.vstack([points, extra])
    a = ZoneIndex(layer, tolerance, grid_cells=0).lookup(pts[:, 0], pts[:, 1])
    b = ZoneIndex(layer, tolerance, grid_cells=256).lookup(pts[:, 0], pts[:, 1])
    for name in ("primary", "status", "cand_ptr", "cand_zone"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # Both paths round to the micrometre, but reach it through different float steps: a value
    # right at a rounding half-way point may land one unit apart.
    np.testing.assert_allclose(a.cand_dist_m, b.cand_dist_m, rtol=0, atol=1.01e-6)


# ---------------------------------------------------------------------------- lookup_one

NON_FINITE_AND_FAR = [
    (np.nan, 40.5),
    (-74.0, np.nan),
    (np.inf, 0.0),
    (0.0, -np.inf),
    (np.nan, np.nan),
    (1e300, -1e300),
    (-180.0, 90.0),
]


def single_lookup(index: ZoneIndex, lon: float, lat: float) -> tuple[int, int, list]:
    """The bulk lookup of one point, in lookup_one's shape."""
    res = index.lookup(np.array([lon]), np.array([lat]))
    cands = list(zip(res.cand_zone.tolist(), res.cand_dist_m.tolist(), strict=True))
    return int(res.primary[0]), int(res.status[0]), cands


def assert_one_equals_bulk(index: ZoneIndex, points: np.ndarray) -> None:
    """lookup_one answers exactly (types, order, bits) what lookup does for each point."""
    for lon, lat in points.tolist():
        got = index.lookup_one(lon, lat)
        want = single_lookup(index, lon, lat)
        assert got == want, f"({lon!r}, {lat!r}): {got} != {want}"
        primary, status, cands = got
        assert type(primary) is int and type(status) is int
        assert all(type(z) is int and type(d) is float for z, d in cands)


def at_tolerance(layer: ZoneLayer, index: ZoneIndex, rng: np.random.Generator) -> np.ndarray:
    """Points off edge midpoints by about the tolerance, measured in the index's UTM."""
    rings = shapely.get_parts(shapely.boundary(layer.geometries))
    coords, which = shapely.get_coordinates(rings, return_index=True)
    same = which[:-1] == which[1:]
    to_m = get_transformer("EPSG:4326", index._utm)
    ax, ay = to_m.transform(coords[:-1][same, 0], coords[:-1][same, 1])
    bx, by = to_m.transform(coords[1:][same, 0], coords[1:][same, 1])
    mx, my = (ax + bx) / 2, (ay + by) / 2
    nx, ny = ay - by, bx - ax
    norm = np.hypot(nx, ny)
    off = index.tolerance_m * rng.choice([-1.0, 1.0], len(mx)) * (1 + rng.uniform(-1e-9, 1e-9))
    lon, lat = get_transformer(index._utm, "EPSG:4326").transform(
        mx + nx / norm * off, my + ny / norm * off
    )
    return np.column_stack([lon, lat])


@SETTINGS
@given(coverages(), st.integers(0, 2**32 - 1))
def test_lookup_one_equals_lookup(
    case: tuple[ZoneLayer, np.ndarray, float, int | None], seed: int
) -> None:
    layer, points, tolerance, grid_cells = case
    index = ZoneIndex(layer, tolerance, grid_cells=grid_cells)
    rng = np.random.default_rng(seed)
    pts = np.vstack([points, at_tolerance(layer, index, rng), NON_FINITE_AND_FAR])
    assert_one_equals_bulk(index, pts)


def test_lookup_one_examples() -> None:
    layer = two_squares()
    index = ZoneIndex(layer, 10.0)
    # inside zone "b" (row 0), far from edges: the grid answers
    assert index.lookup_one(-74.0 + 2.0**-11, 40.5 + 2.0**-11) == (0, 0, [(0, 0.0)])
    # on the shared edge: "a" (row 1) wins by id, both at 0 m
    assert index.lookup_one(-74.0 + 2.0**-10, 40.5 + 2.0**-11) == (1, 1, [(1, 0.0), (0, 0.0)])
    primary, status, cands = index.lookup_one(-74.0 - 5.5 / 84_400, 40.5 + 2.0**-11)
    assert (primary, status, [z for z, _ in cands]) == (-1, 2, [0]) and 4 < cands[0][1] < 7
    assert index.lookup_one(-74.1, 40.5) == (-1, 2, [])
    assert index.lookup_one(float("nan"), 40.5) == (-1, 2, [])
    assert index.lookup_one(np.float64(-74.0 + 2.0**-11), np.float32(40.5)) == single_lookup(
        index, -74.0 + 2.0**-11, float(np.float32(40.5))
    )


def test_lookup_one_without_zones_or_grid() -> None:
    layer = two_squares()
    for index in (ZoneIndex(layer, 10.0, grid_cells=0), ZoneIndex(layer, 0.0)):
        for lon, lat in ((-74.0 + 2.0**-10, 40.5 + 2.0**-11), (-74.0 + 2.0**-12, 40.5)):
            assert index.lookup_one(lon, lat) == single_lookup(index, lon, lat)
    empty = ZoneIndex(make_layer("none", [], []), 10.0)
    assert empty.lookup_one(0.0, 0.0) == (-1, 2, [])


@given(st.floats(0.0, 1e4, allow_nan=False) | st.sampled_from([0.5e-6, 2.5e-6, 1.0000005]))
def test_round_um_is_numpy_round(metres: float) -> None:
    assert _round_um(metres) == float(np.round(np.array([metres]), 6)[0])
    half = (np.floor(metres * 1e6) + 0.5) / 1e6  # a halfway case, as far as floats allow
    assert _round_um(half) == float(np.round(np.array([half]), 6)[0])


@pytest.fixture(scope="module")
def demo_indexes(demo_profile_path) -> dict[str, ZoneIndex]:  # type: ignore[no-untyped-def]
    """ZoneIndexes of the demo city's layers, as the router builds them."""
    profile = load_profile(demo_profile_path)
    return {spec.name: ZoneIndex(load_layer(spec), 10.0) for spec in profile.layers}


@pytest.mark.slow
def test_lookup_one_equals_lookup_on_demo_city(demo_indexes: dict[str, ZoneIndex]) -> None:
    rng = np.random.default_rng(20240611)
    for index in demo_indexes.values():
        geoms = index.layer.geometries
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        pad = 0.05 * (maxx - minx)
        rand = np.column_stack(
            [rng.uniform(minx - pad, maxx + pad, 600), rng.uniform(miny - pad, maxy + pad, 600)]
        )
        vertices = shapely.get_coordinates(geoms)
        near = vertices[rng.choice(len(vertices), 300)] + rng.normal(0, 1e-4, (300, 2))
        pts = np.vstack([rand, vertices[rng.choice(len(vertices), 100)], near])
        pts = np.vstack([pts, at_tolerance(index.layer, index, rng)[rng.choice(100, 100)]])
        assert_one_equals_bulk(index, pts)


# ---------------------------------------------------------------------------- examples


def two_squares() -> ZoneLayer:
    size = 2.0**-10
    return square_grid((-74.0, 40.5), size, 2, 1, ["b", "a"])  # ids out of row order


def test_shared_edge_goes_to_smallest_id_and_both_are_candidates() -> None:
    layer = two_squares()
    index = ZoneIndex(layer, 10.0)
    edge_x = -74.0 + 2.0**-10
    res = index.lookup([edge_x], [40.5 + 2.0**-11])
    assert res.primary.tolist() == [1]  # "a" < "b"
    assert STATUS_CODES[res.status[0]] is ZoneStatus.NEAR_BOUNDARY
    assert res.cand_zone.tolist() == [1, 0]
    assert res.cand_dist_m.tolist() == [0.0, 0.0]


def test_interior_beats_boundary_in_overlapping_layers() -> None:
    big = shapely.box(0.0, 0.0, 0.01, 0.01)
    small = shapely.box(0.0025, 0.0025, 0.005, 0.005)
    layer = make_layer("overlap", ["z", "a"], [big, small])
    index = ZoneIndex(layer, 0.0)
    # on the small zone's edge: only "z" holds it in its interior, so "z" wins over "a"
    on_edge = index.lookup([0.0025], [0.003])
    assert on_edge.primary.tolist() == [0]
    assert on_edge.cand_zone.tolist() == [0, 1]
    # strictly inside both: both interiors, smallest id wins
    inside = index.lookup([0.003], [0.003])
    assert inside.primary.tolist() == [1]


def test_inside_far_from_edges_has_one_candidate() -> None:
    layer = two_squares()
    res = ZoneIndex(layer, 10.0).lookup([-74.0 + 2.0**-11], [40.5 + 2.0**-11])
    assert res.primary.tolist() == [0]
    assert res.status.tolist() == [0]
    assert res.cand_ptr.tolist() == [0, 1]


def test_outside_lists_zones_within_tolerance() -> None:
    layer = two_squares()
    index = ZoneIndex(layer, 10.0)
    # about 5.5 m west of the west edge of zone "b" (row 0)
    res = index.lookup([-74.0 - 5.5 / 84_400], [40.5 + 2.0**-11])
    assert res.primary.tolist() == [-1]
    assert STATUS_CODES[res.status[0]] is ZoneStatus.OUTSIDE_COVERAGE
    assert res.cand_zone.tolist() == [0]
    assert 4.0 < res.cand_dist_m[0] < 7.0
    far = index.lookup([-74.1], [40.5])
    assert far.cand_ptr.tolist() == [0, 0] and far.primary.tolist() == [-1]


def test_non_finite_and_empty_inputs() -> None:
    index = ZoneIndex(two_squares(), 10.0)
    res = index.lookup([np.nan, np.inf], [40.5, 40.5])
    assert res.primary.tolist() == [-1, -1]
    assert res.status.tolist() == [2, 2]
    assert res.cand_ptr.tolist() == [0, 0, 0]
    empty = index.lookup(np.zeros(0), np.zeros(0))
    assert len(empty.primary) == 0 and empty.cand_ptr.tolist() == [0]
    assert index.covers_any([np.nan], [0.0]).tolist() == [False]


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance_m"):
        ZoneIndex(two_squares(), -1.0)


def test_attributes_and_grid_info() -> None:
    layer = two_squares()
    index = ZoneIndex(layer, 7.5)
    assert index.layer is layer and index.tolerance_m == 7.5
    info = index.grid_info
    assert info["nx"] > 0 and 0 <= info["mixed_share"] <= 1


def test_overlaps_shares() -> None:
    layer = two_squares()
    index = ZoneIndex(layer, 10.0)
    size = 2.0**-10
    # 3/4 in zone row 0 ("b"), 1/4 in zone row 1 ("a")
    area = shapely.box(-74.0 + size * 0.25, 40.5, -74.0 + size * 1.25, 40.5 + size)
    shares = index.overlaps(area)
    assert [s.zone_id for s in shares] == ["b", "a"]
    assert shares[0].share == pytest.approx(0.75, rel=1e-3)
    assert shares[1].share == pytest.approx(0.25, rel=1e-3)
    assert sum(s.share for s in shares) == pytest.approx(1.0, rel=1e-9)
    assert shares[0].area_m2 == pytest.approx(
        0.75 * shapely.area(to_utm(np.array([area]), index._utm))[0]
    )
    assert shares[0].name == "Zb"
    half_out = shapely.box(-74.0 - size, 40.5, -74.0 + size, 40.5 + size)
    assert sum(s.share for s in index.overlaps(half_out)) == pytest.approx(0.5, rel=1e-3)
    assert index.overlaps(shapely.box(0, 0, 1, 1)) == []


@pytest.mark.parametrize(
    "geometry",
    [
        shapely.Point(-74.0, 40.5),
        shapely.Polygon(),
        shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]),
        "POLYGON ((0 0, 1 0, 1 1, 0 0))",
    ],
)
def test_overlaps_refuses_unusable_geometry(geometry: object) -> None:
    with pytest.raises(InvalidGeometryError):
        ZoneIndex(two_squares(), 10.0).overlaps(geometry)


def test_zone_with_hole_filled_by_another_zone() -> None:
    outer = shapely.Polygon(
        [(0, 0), (0.01, 0), (0.01, 0.01), (0, 0.01)],
        holes=[[(0.0025, 0.0025), (0.0075, 0.0025), (0.0075, 0.0075), (0.0025, 0.0075)]],
    )
    inner = shapely.box(0.0025, 0.0025, 0.0075, 0.0075)
    layer = make_layer("donut", ["outer", "inner"], [outer, inner])
    index = ZoneIndex(layer, 10.0, grid_cells=32)
    pts = np.array([[0.005, 0.005], [0.001, 0.001], [0.0025, 0.005], [0.0026, 0.005]])
    expected, borderline = brute_force(layer, pts[:, 0], pts[:, 1], 10.0)
    assert_matches(index.lookup(pts[:, 0], pts[:, 1]), expected, borderline, layer.ids)
    assert index.lookup([0.005], [0.005]).primary.tolist() == [1]
