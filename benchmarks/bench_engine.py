"""Engine benchmark: point -> zone and nearest responder, ours vs geopandas vs a per-point loop.

    python benchmarks/bench_engine.py [--points 1000000] [--repeats 3] [--sample 20000]

Layers (real data from ../shared/data, or GEO_ROUTER_SHARED_DATA): NYC police precincts (77,
id ``precinct``) with the FDNY firehouses as responders; Bandung kelurahan (151, id
``village_code``) with 30 deterministic random points inside the city standing in for fire
posts (no real Bandung station file exists). Points are uniform in each layer's bounds
(fixed seed). Times are the best of ``--repeats`` runs, each in a forked child; the per-point
loops (rtree, DynamicNearestIndex) run once on ``--sample`` points and are scaled up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MEMORY_NOTE,
    Measurement,
    measure,
    print_table,
    require_shared_data,
    uniform_points,
    verdict,
)

from geo_router.city.coords import GEOD
from geo_router.city.facilities import FacilitySet, load_facilities
from geo_router.city.layers import ZoneLayer, load_layer
from geo_router.city.nearest import DynamicNearestIndex, StaticNearestIndex
from geo_router.city.profile import FacilitySpec, LayerSpec
from geo_router.city.zone_index import ZoneIndex

PRECINCTS = "nyc_police_precincts/police_precincts_2020.geojson"
KELURAHAN = "bandung_admin/bandung_kelurahan_hdx_bps_2020.geojson"
FIREHOUSES = "nyc_firehouses/FDNY_Firehouse_Listing.csv"
SEED = 20240601
STAND_IN_POSTS = 30
HEADERS = ["method", "layer", "points", "seconds", "cpu s", "points/s", "x vs geopandas", "peak MB"]
HEADERS.append("note")


@dataclass
class Case:
    """One layer with its responders, indexes and geopandas frames."""

    label: str
    layer: ZoneLayer
    facilities: FacilitySet
    metric_crs: str
    index: ZoneIndex | None = None
    static: StaticNearestIndex | None = None
    dynamic: DynamicNearestIndex | None = None
    zones: gpd.GeoDataFrame | None = None
    facilities_m: gpd.GeoDataFrame | None = None


def stand_in_posts(layer: ZoneLayer, folder: Path) -> FacilitySet:
    """30 deterministic random points inside the layer's union, loaded as a facility set."""
    city = shapely.union_all(layer.geometries)
    shapely.prepare(city)
    rng = np.random.default_rng(SEED)
    minx, miny, maxx, maxy = city.bounds
    lon, lat = np.empty(0), np.empty(0)
    while lon.size < STAND_IN_POSTS:
        x, y = rng.uniform(minx, maxx, 200), rng.uniform(miny, maxy, 200)
        keep = shapely.contains_xy(city, x, y)
        lon, lat = np.concatenate([lon, x[keep]]), np.concatenate([lat, y[keep]])
    path = folder / "bandung_stand_in_posts.csv"
    pd.DataFrame(
        {
            "id": [f"POS-{i + 1:02d}" for i in range(STAND_IN_POSTS)],
            "lon": lon[:STAND_IN_POSTS],
            "lat": lat[:STAND_IN_POSTS],
        }
    ).to_csv(path, index=False)
    spec = FacilitySpec(
        type="fire_post", path=path, id_field="id", lon_field="lon", lat_field="lat"
    )
    return load_facilities(spec)


def load_cases(data: Path, folder: Path) -> list[Case]:
    """The two benchmark layers with their responders."""
    precincts = load_layer(
        LayerSpec(name="police_precinct", path=data / PRECINCTS, id_field="precinct")
    )
    firehouses = load_facilities(
        FacilitySpec(
            type="fire_station",
            path=data / FIREHOUSES,
            id_field="FacilityName",
            lon_field="Longitude",
            lat_field="Latitude",
        )
    )
    kelurahan = load_layer(
        LayerSpec(name="kelurahan", path=data / KELURAHAN, id_field="village_code")
    )
    posts = stand_in_posts(kelurahan, folder)
    return [
        Case("nyc precincts", precincts, firehouses, "EPSG:32618"),
        Case("bandung kelurahan", kelurahan, posts, "EPSG:32748"),
    ]


def build(case: Case) -> dict[str, float]:
    """Build our indexes and the geopandas frames (not timed with the queries)."""
    timings = {}
    started = time.perf_counter()
    case.index = ZoneIndex(case.layer, tolerance_m=10.0)
    timings["ZoneIndex build"] = time.perf_counter() - started
    started = time.perf_counter()
    case.static = StaticNearestIndex(case.facilities)
    timings["StaticNearestIndex build"] = time.perf_counter() - started
    started = time.perf_counter()
    case.dynamic = DynamicNearestIndex(case.facilities)
    timings["DynamicNearestIndex build"] = time.perf_counter() - started
    case.zones = gpd.GeoDataFrame(
        {"zone": np.arange(len(case.layer.ids))}, geometry=case.layer.geometries, crs=4326
    )
    facilities = gpd.GeoDataFrame(
        {"facility": np.arange(len(case.facilities.ids))},
        geometry=gpd.points_from_xy(case.facilities.lon, case.facilities.lat),
        crs=4326,
    )
    case.facilities_m = facilities.to_crs(case.metric_crs)
    return timings


# --------------------------------------------------------------------------- methods


def sjoin_zones(points: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> np.ndarray:
    """geopandas.sjoin within: (point row, zone row) pairs."""
    joined = gpd.sjoin(points, zones, predicate="within", how="inner")
    return np.column_stack([joined.index.to_numpy(), joined["zone"].to_numpy()])


def bounds_tree(zones: np.ndarray) -> Any:
    """An rtree index of the polygons' bounding boxes (built once, not timed)."""
    from rtree import index as rtree_index

    return rtree_index.Index((i, tuple(shapely.bounds(geom)), None) for i, geom in enumerate(zones))


def rtree_loop(tree: Any, zones: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The classic loop: rtree of polygon bounds, then contains per candidate, per point."""
    shapely.prepare(zones)
    found = np.full(lon.size, -1, dtype=np.int64)
    for i, (x, y) in enumerate(zip(lon.tolist(), lat.tolist(), strict=True)):
        for zone in tree.intersection((x, y, x, y)):
            if zones[zone].contains(shapely.Point(x, y)):
                found[i] = zone
                break
    return found


def geopandas_nearest(
    points: gpd.GeoDataFrame, facilities_m: gpd.GeoDataFrame, crs: str
) -> np.ndarray:
    """sjoin_nearest in a metric CRS: the facility row per point (first on ties)."""
    joined = gpd.sjoin_nearest(points.to_crs(crs), facilities_m, how="left")
    joined = joined[~joined.index.duplicated(keep="first")]
    return joined["facility"].to_numpy()


def geopandas_zones_and_nearest(
    points: gpd.GeoDataFrame, zones: gpd.GeoDataFrame, facilities_m: gpd.GeoDataFrame, crs: str
) -> np.ndarray:
    """The same job as ZoneIndex + nearest, in geopandas."""
    pairs = sjoin_zones(points, zones)
    zone = np.full(len(points), -1)
    zone[pairs[:, 0]] = pairs[:, 1]
    nearest = geopandas_nearest(points, facilities_m, crs)
    return np.column_stack([zone, nearest])


# --------------------------------------------------------------------------- agreement


def zone_agreement(
    case: Case, lon: np.ndarray, lat: np.ndarray, ours: np.ndarray, pairs: np.ndarray
) -> str:
    """Primary zone vs sjoin's, allowing boundary ties (sjoin's zone among our candidates)."""
    n = lon.size
    count = np.bincount(pairs[:, 0], minlength=n)
    theirs = np.full(n, -1)
    theirs[pairs[:, 0]] = pairs[:, 1]
    same = (ours == theirs) & (count <= 1)
    differ = np.flatnonzero(~same)
    lookup = case.index.lookup(lon[differ], lat[differ])
    ties = 0
    their_sets: dict[int, set[int]] = {}
    for point, zone in pairs[np.isin(pairs[:, 0], differ)]:
        their_sets.setdefault(int(point), set()).add(int(zone))
    for j, point in enumerate(differ.tolist()):
        candidates = set(lookup.cand_zone[lookup.cand_ptr[j] : lookup.cand_ptr[j + 1]].tolist())
        theirs_here = their_sets.get(point, set())
        if (
            ours[point] in theirs_here
            or (theirs_here and theirs_here <= candidates)
            or (not theirs_here and lookup.status[j] != 0)
        ):
            ties += 1
    exact = same.sum()
    return (
        f"{case.label}: primary zone = sjoin's for {exact:,}/{n:,} points "
        f"({100 * exact / n:.4f}%); {ties:,} more are boundary ties (within 10 m, both "
        f"answers among the candidates); {differ.size - ties:,} real disagreements"
    )


def nearest_agreement(
    case: Case,
    lon: np.ndarray,
    lat: np.ndarray,
    ours: np.ndarray,
    ours_m: np.ndarray,
    theirs: np.ndarray,
) -> str:
    """Nearest facility (geodesic) vs sjoin_nearest (planar UTM): equal or within 1 m."""
    same = ours == theirs
    differ = np.flatnonzero(~same)
    fs = case.facilities
    _, _, their_m = GEOD.inv(
        lon[differ], lat[differ], fs.lon[theirs[differ]], fs.lat[theirs[differ]]
    )
    close = np.abs(np.asarray(their_m) - ours_m[differ]) <= 1.0
    n = lon.size
    return (
        f"{case.label}: nearest facility = sjoin_nearest's for {same.sum():,}/{n:,} points; "
        f"{close.sum():,} more within 1 m (ties); {(~close).sum():,} differ (UTM planar vs "
        "geodesic distance)"
    )


# --------------------------------------------------------------------------- run


def row(method: str, case: Case, n: int, m: Measurement, baseline: float, note: str = "") -> list:
    ratio = baseline / m.seconds
    return [method, case.label, n, m.seconds, m.cpu_seconds, n / m.seconds, ratio, m.peak_mb, note]


def bench_case(
    case: Case, n: int, repeats: int, sample: int
) -> tuple[list[list], list[str], dict[str, float]]:
    """Every method on one layer; table rows, agreement lines and the target ratios."""
    lon, lat = uniform_points(shapely.total_bounds(case.layer.geometries), n, SEED)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    index, static, dynamic = case.index, case.static, case.dynamic
    assert index is not None and static is not None and dynamic is not None
    sub = slice(0, min(sample, n))
    scale = n / lon[sub].size

    ours = measure(lambda: index.lookup(lon, lat).primary, repeats)
    sjoin = measure(lambda: sjoin_zones(points, case.zones), repeats)
    tree = bounds_tree(case.layer.geometries)
    loop = measure(lambda: rtree_loop(tree, case.layer.geometries, lon[sub], lat[sub]), 1)
    loop = Measurement(loop.seconds * scale, loop.peak_mb, loop.result, loop.cpu_seconds * scale)

    def ours_both() -> np.ndarray:
        primary = index.lookup(lon, lat).primary
        nearest = static.nearest(lon, lat, 1).index[:, 0]
        return np.column_stack([primary, nearest])

    both = measure(ours_both, repeats)
    gp_both = measure(
        lambda: geopandas_zones_and_nearest(points, case.zones, case.facilities_m, case.metric_crs),
        repeats,
    )
    kd = measure(lambda: static.nearest(lon, lat, 1), repeats)
    dyn = measure(lambda: dynamic.nearest(lon[sub], lat[sub], 1).index[:, 0], 1)
    dyn = Measurement(dyn.seconds * scale, dyn.peak_mb, dyn.result, dyn.cpu_seconds * scale)
    gp_near = measure(
        lambda: geopandas_nearest(points, case.facilities_m, case.metric_crs), repeats
    )

    scaled = f"{lon[sub].size:,} points, scaled"
    rows = [
        row("ZoneIndex.lookup (ours)", case, n, ours, sjoin.seconds),
        row("geopandas.sjoin within", case, n, sjoin, sjoin.seconds),
        row("rtree + contains loop", case, n, loop, sjoin.seconds, scaled),
        row("zones+nearest: ours", case, n, both, gp_both.seconds, "lookup + KD-tree k=1"),
        row(
            "zones+nearest: geopandas",
            case,
            n,
            gp_both,
            gp_both.seconds,
            "sjoin + sjoin_nearest (UTM)",
        ),
        row("nearest: StaticNearestIndex", case, n, kd, gp_near.seconds, "KD-tree, geodesic"),
        row("nearest: DynamicNearestIndex", case, n, dyn, gp_near.seconds, f"rtree, {scaled}"),
        row("nearest: sjoin_nearest", case, n, gp_near, gp_near.seconds, "UTM, incl. to_crs"),
    ]
    kd_result = kd.result
    dyn_same = np.mean(dyn.result == kd_result.index[sub, 0])
    notes = [
        zone_agreement(case, lon, lat, ours.result, sjoin.result),
        nearest_agreement(
            case, lon, lat, kd_result.index[:, 0], kd_result.distance_m[:, 0], gp_near.result
        ),
        f"{case.label}: DynamicNearestIndex = StaticNearestIndex on {100 * dyn_same:.3f}% "
        "of the sample",
    ]
    ratios = {
        "lookup": sjoin.seconds / ours.seconds,
        "zones+nearest": gp_both.seconds / both.seconds,
        "lookup cpu": sjoin.cpu_seconds / ours.cpu_seconds,
        "zones+nearest cpu": gp_both.cpu_seconds / both.cpu_seconds,
    }
    return rows, notes, ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", type=int, default=20_000, help="points for per-point loops")
    args = parser.parse_args(argv)
    data = require_shared_data(PRECINCTS, KELURAHAN, FIREHOUSES)
    print(
        f"points: {args.points:,} uniform in each layer's bounds (seed {SEED}); best of "
        f"{args.repeats}; {MEMORY_NOTE}.\nBandung responders: {STAND_IN_POSTS} deterministic "
        "random points inside the city, standing in for fire posts (no real station data).\n"
        "'x vs geopandas' = geopandas seconds / method seconds for the same task; "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        flush=True,
    )
    rows, notes, verdicts = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        cases = load_cases(data, Path(folder))
    for case in cases:
        builds = build(case)
        print(
            f"{case.label}: {len(case.layer.ids)} zones, {len(case.facilities.ids)} facilities; "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in builds.items()),
            flush=True,
        )
        case_rows, case_notes, ratios = bench_case(case, args.points, args.repeats, args.sample)
        rows += case_rows
        notes += case_notes
        verdicts += [
            verdict(f"{case.label}: lookup vs sjoin", ratios["lookup"], 3.0, ratios["lookup cpu"]),
            verdict(
                f"{case.label}: zones+nearest vs geopandas",
                ratios["zones+nearest"],
                2.0,
                ratios["zones+nearest cpu"],
            ),
        ]
    print_table(HEADERS, rows)
    print("\n".join(notes))
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
