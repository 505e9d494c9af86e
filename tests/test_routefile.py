"""route_file: every row, column and value kept; routing columns added; all formats."""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_router.batch.routefile import (
    RouteFileSummary,
    detect_coordinate_fields,
    file_format,
    route_file,
)
from geo_router.city.models import STATUS_CODES, BulkRoute, LayerLookup, NearestLookup, ZoneStatus
from geo_router.errors import InputError

# --------------------------------------------------------------------------- a small fake router
# Zones "A" = [0,1]x[0,1] and "B" = [1,2]x[0,1]; a point within 0.01 deg of x = 1 has both as
# candidates. Stations "s1" at (0.5, 0.5) and "s2" at (1.5, 0.5); "metres" are degrees * 1000.


@dataclass
class _Layer:
    ids: np.ndarray


class FakeRouter:
    """Just enough of Router for route_file: snapshot ids and route_many."""

    boxes = shapely.box([0.0, 1.0], [0.0, 0.0], [1.0, 2.0], [1.0, 1.0])
    stations = np.array([[0.5, 0.5], [1.5, 0.5]])

    def __init__(self) -> None:
        self.snapshot = SimpleNamespace(
            layers={"zone": _Layer(np.array(["A", "B"], dtype=object))},
            facilities={"station": _Layer(np.array(["s1", "s2"], dtype=object))},
        )
        self.calls: list[int] = []

    def route_many(
        self, lon: np.ndarray, lat: np.ndarray, *, k: int = 1, snapshot: Any = None
    ) -> BulkRoute:
        n = len(lon)
        self.calls.append(n)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
        reasons = [None if ok else "coordinates out of range or not finite" for ok in valid]
        points = shapely.points(np.where(valid, lon, 0), np.where(valid, lat, 0))
        dist = shapely.distance(points[:, None], self.boxes[None, :])
        near = (dist <= 0.01) & valid[:, None]
        inside = (dist == 0) & valid[:, None]
        primary = np.where(inside.any(axis=1), inside.argmax(axis=1), -1).astype(np.int32)
        counts = near.sum(axis=1)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # primary first: order each row's zones by distance (the primary has distance 0)
        order = np.argsort(np.where(near, dist, np.inf), axis=1, kind="stable")
        zone = np.concatenate([order[i, : counts[i]] for i in range(n)] or [[]]).astype(np.int32)
        status = np.where(primary < 0, 2, np.where(counts > 1, 1, 0))
        status = np.where(valid, status, 3).astype(np.int8)
        d = np.hypot(lon[:, None] - self.stations[:, 0], lat[:, None] - self.stations[:, 1]) * 1000
        rank = np.argsort(d, axis=1)[:, :k]
        idx = np.where(valid[:, None], rank, -1).astype(np.int32)
        dist_m = np.where(idx >= 0, np.take_along_axis(d, rank, axis=1), np.nan)
        if k > 2:
            idx[:, 2:] = -1
            dist_m[:, 2:] = np.nan
        return BulkRoute(
            n=n,
            valid=valid,
            reasons=reasons,
            layers={"zone": LayerLookup(primary, status, ptr, zone, np.zeros(len(zone)))},
            nearest={"station": NearestLookup(idx, dist_m, np.zeros_like(dist_m))},
            axis_swap=np.zeros(n, dtype=bool),
        )


@pytest.fixture
def fake_router() -> FakeRouter:
    return FakeRouter()


def read_rows(path: Path) -> list[list[str]]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)


ODD_ROWS = [
    ["id", "code", "note", "lon", "lat", "empty"],
    ["1", "007", "plain", "0.5", "0.5", ""],
    ["2", "0042", "a, quoted, comma", "1.5", "0.5", ""],
    ["3", "", 'she said "hi"', "", "0.5", "x"],
    ["4", "1e5", "non-numeric lon", "abc", "0.5", ""],
    ["5", "NA", "NA stays NA", " 1.005 ", "0.5", "NULL"],
    ["6", "-0", "out of range", "500", "0.5", ""],
    ["7", "00", "nan", "nan", "0.5", ""],
    ["8", "TRUE", "outside", "5", "5", ""],
    ["9", "١٢", "ünïcödé ✓", "0.25", "", ""],
    ["10", "3.10", "multi\nline", "0.75", "0.25", ""],
]


def routed(tmp_path: Path, router: Any, rows: list[list[str]], name: str = "in.csv", **kw: Any):
    source = tmp_path / name
    write_rows(source, rows)
    target = tmp_path / ("out_" + name)
    summary = route_file(source, target, router, **kw)
    return summary, read_rows(target)


# --------------------------------------------------------------------------- CSV


def test_csv_keeps_rows_columns_and_values(tmp_path: Path, fake_router: FakeRouter) -> None:
    summary, out = routed(tmp_path, fake_router, ODD_ROWS)
    header = out[0]
    width = len(ODD_ROWS[0])
    assert header[:width] == ODD_ROWS[0]
    assert header[width:] == [
        "zone_id",
        "zone_candidates",
        "zone_status",
        "station_id",
        "station_distance_m",
        "route_error",
    ]
    assert [row[:width] for row in out[1:]] == ODD_ROWS[1:]
    assert summary.rows == len(ODD_ROWS) - 1
    assert summary.coordinates == "columns lon/lat"


def test_csv_routing_columns(tmp_path: Path, fake_router: FakeRouter) -> None:
    summary, out = routed(tmp_path, fake_router, ODD_ROWS)
    rows = {row[0]: dict(zip(out[0], row, strict=True)) for row in out[1:]}
    assert rows["1"]["zone_id"] == "A"
    assert rows["1"]["zone_candidates"] == "A"
    assert rows["1"]["zone_status"] == "inside"
    assert rows["1"]["station_id"] == "s1"
    assert rows["1"]["station_distance_m"] in {"0", "0.0"}
    assert rows["1"]["route_error"] == ""
    # " 1.005 " parses (whitespace trimmed) and lies near the A|B boundary, inside B
    assert rows["5"]["zone_id"] == "B"
    assert rows["5"]["zone_candidates"] == "B;A"
    assert rows["5"]["zone_status"] == "near_boundary"
    assert float(rows["5"]["station_distance_m"]) == pytest.approx(495.0, abs=0.05)
    assert rows["8"]["zone_status"] == "outside_coverage"
    assert rows["8"]["zone_id"] == rows["8"]["zone_candidates"] == ""
    assert rows["8"]["station_id"] == "s2"
    invalid = {"3", "4", "6", "7", "9"}
    for key in invalid:
        row = rows[key]
        assert row["zone_status"] == "invalid_coordinates", key
        assert row["route_error"], key
        assert row["zone_id"] == row["zone_candidates"] == row["station_id"] == ""
        assert row["station_distance_m"] == ""
    assert rows["3"]["route_error"] == "empty lon"
    assert rows["4"]["route_error"] == "non-numeric lon: 'abc'"
    assert rows["9"]["route_error"] == "empty lat"
    assert summary.invalid == len(invalid)
    assert summary.valid == summary.rows - len(invalid)


def test_distance_is_rounded_to_decimetres(tmp_path: Path, fake_router: FakeRouter) -> None:
    _, out = routed(tmp_path, fake_router, [["lon", "lat"], ["0.512345", "0.5"]])
    assert out[1][out[0].index("station_distance_m")] == "12.3"


def test_unquoted_output_when_nothing_needs_quotes(tmp_path: Path, fake_router: FakeRouter) -> None:
    source = tmp_path / "plain.csv"
    source.write_text("id,lon,lat\n007,0.5,0.5\n")
    route_file(source, tmp_path / "plain_out.csv", fake_router)
    text = (tmp_path / "plain_out.csv").read_text()
    assert text.splitlines()[1].startswith("007,0.5,0.5,A,A,inside,s1,")


def test_gzip_in_and_out(tmp_path: Path, fake_router: FakeRouter) -> None:
    summary, out = routed(tmp_path, fake_router, ODD_ROWS, name="in.csv.gz")
    assert [row[: len(ODD_ROWS[0])] for row in out] == [*[ODD_ROWS[0]], *ODD_ROWS[1:]]
    assert summary.rows == len(ODD_ROWS) - 1


def test_detects_coordinate_columns_case_insensitively(
    tmp_path: Path, fake_router: FakeRouter
) -> None:
    rows = [["Name", "LATITUDE", "Longitude"], ["a", "0.5", "1.5"]]
    summary, out = routed(tmp_path, fake_router, rows)
    assert summary.coordinates == "columns Longitude/LATITUDE"
    assert out[1][out[0].index("zone_id")] == "B"


def test_detect_coordinate_fields() -> None:
    assert detect_coordinate_fields(["X", "Y", "z"]) == ("X", "Y")
    assert detect_coordinate_fields(["lng", "lat"]) == ("lng", "lat")
    assert detect_coordinate_fields(["lon", "x", "lat", "y"]) == ("lon", "lat")
    assert detect_coordinate_fields(["a", "b"]) is None


def test_named_fields_override_detection(tmp_path: Path, fake_router: FakeRouter) -> None:
    rows = [["lon", "lat", "lon2", "lat2"], ["5", "5", "0.5", "0.5"]]
    summary, out = routed(tmp_path, fake_router, rows, lon_field="lon2", lat_field="lat2")
    assert summary.coordinates == "columns lon2/lat2"
    assert out[1][out[0].index("zone_id")] == "A"


def test_missing_field_names_the_file_and_columns(tmp_path: Path, fake_router: FakeRouter) -> None:
    with pytest.raises(InputError, match=r"no column 'lo'.*columns: lon, lat"):
        routed(tmp_path, fake_router, [["lon", "lat"], ["1", "1"]], lon_field="lo", lat_field="lat")


def test_undetectable_coordinates(tmp_path: Path, fake_router: FakeRouter) -> None:
    with pytest.raises(InputError, match="cannot tell which columns"):
        routed(tmp_path, fake_router, [["a", "b"], ["1", "1"]])


def test_refuses_bad_arguments(tmp_path: Path, fake_router: FakeRouter) -> None:
    rows = [["lon", "lat"], ["1", "1"]]
    with pytest.raises(InputError, match="need a CRS"):
        routed(tmp_path, fake_router, rows, x_field="lon", y_field="lat")
    with pytest.raises(InputError, match="not both"):
        routed(tmp_path, fake_router, rows, lon_field="lon", lat_field="lat", x_field="lon")
    with pytest.raises(InputError, match="unsupported file type"):
        route_file(tmp_path / "in.csv", tmp_path / "out.xlsx", fake_router)
    with pytest.raises(InputError, match="not found"):
        route_file(tmp_path / "missing.csv", tmp_path / "out.csv", fake_router)
    with pytest.raises(InputError, match="overwrite the input"):
        route_file(tmp_path / "in.csv", tmp_path / "in.csv", fake_router)


def test_refuses_to_overwrite_input_columns(tmp_path: Path, fake_router: FakeRouter) -> None:
    with pytest.raises(InputError, match="zone_id"):
        routed(tmp_path, fake_router, [["lon", "lat", "zone_id"], ["1", "1", "x"]])


def test_header_only_csv(tmp_path: Path, fake_router: FakeRouter) -> None:
    summary, out = routed(tmp_path, fake_router, [["lon", "lat"]])
    assert summary.rows == 0
    assert out == [["lon", "lat", *out[0][2:]]]
    assert "route_error" in out[0]


def test_chunks_and_k(tmp_path: Path, fake_router: FakeRouter) -> None:
    rows = [["lon", "lat"]] + [[str(0.1 * i), "0.5"] for i in range(25)]
    _, whole = routed(tmp_path, fake_router, rows, k=3)
    _, chunked = routed(tmp_path, fake_router, rows, name="again.csv", k=3, chunk_size=4)
    assert whole == chunked
    assert fake_router.calls[-7:] == [4, 4, 4, 4, 4, 4, 1]
    header = whole[0]
    assert header[header.index("station_id") :] == [
        "station_id",
        "station_distance_m",
        "station_id_2",
        "station_distance_m_2",
        "station_id_3",
        "station_distance_m_3",
        "route_error",
    ]
    first = dict(zip(header, whole[1], strict=True))
    assert (first["station_id"], first["station_id_2"], first["station_id_3"]) == ("s1", "s2", "")


def test_file_format() -> None:
    assert file_format("a/b.CSV.GZ") == "csv"
    assert file_format("b.geojson") == "geojson"
    assert file_format("b.gpkg") == "gpkg"
    assert file_format("b.parquet") == "parquet"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(
        st.tuples(
            st.one_of(st.text(max_size=6), st.floats(allow_nan=True).map(repr)),
            st.one_of(st.text(max_size=6), st.floats(-1, 2).map(str)),
            st.text(max_size=8),
        ),
        max_size=12,
    )
)
def test_any_cells_are_kept(tmp_path_factory: pytest.TempPathFactory, cells: list) -> None:
    tmp_path = tmp_path_factory.mktemp("prop")
    # csv cannot carry a lone carriage return or NUL through every reader; keep to text
    clean = [[c.replace("\r", "").replace("\x00", "") for c in row] for row in cells]
    rows = [["lon", "lat", "other"], *clean]
    summary, out = routed(tmp_path, FakeRouter(), rows)
    assert [row[:3] for row in out] == rows
    statuses = {s.value for s in STATUS_CODES}
    header = out[0]
    for row in out[1:]:
        record = dict(zip(header, row, strict=True))
        assert record["zone_status"] in statuses
        bad = record["zone_status"] == ZoneStatus.INVALID
        assert bool(record["route_error"]) == bad
    assert summary.valid + summary.invalid == summary.rows == len(clean)


# --------------------------------------------------------------------------- geometry formats

POINTS = gpd.GeoDataFrame(
    {"code": ["007", "x", "y", "z"], "n": [1, 2, 3, 4]},
    geometry=[
        shapely.Point(0.5, 0.5),
        shapely.Point(1.5, 0.5),
        None,
        shapely.box(0, 0, 0.1, 0.1),
    ],
    crs="EPSG:4326",
)


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".parquet"])
def test_geometry_formats_round_trip(tmp_path: Path, fake_router: FakeRouter, suffix: str) -> None:
    source = tmp_path / f"in{suffix}"
    if suffix == ".parquet":
        POINTS.to_parquet(source)
    else:
        POINTS.to_file(source)
    target = tmp_path / f"out{suffix}"
    summary = route_file(source, target, fake_router)
    assert summary.coordinates == "geometry (EPSG:4326)"
    out = gpd.read_parquet(target) if suffix == ".parquet" else gpd.read_file(target)
    assert list(out["code"]) == ["007", "x", "y", "z"]
    assert list(out["n"]) == [1, 2, 3, 4]
    assert list(out["zone_id"].fillna("")) == ["A", "B", "", ""]
    assert list(out["zone_status"])[2:] == ["invalid_coordinates"] * 2
    assert list(out["route_error"].fillna(""))[2:] == [
        "missing geometry",
        "geometry is a Polygon, not a Point",
    ]
    assert out.geometry.iloc[3].equals(POINTS.geometry.iloc[3])
    assert summary.invalid == 2


def test_projected_geometry_is_reprojected(tmp_path: Path, fake_router: FakeRouter) -> None:
    source = tmp_path / "utm.gpkg"
    POINTS.iloc[:2].to_crs("EPSG:32631").to_file(source)
    summary = route_file(source, tmp_path / "out.csv", fake_router)
    assert summary.coordinates == "geometry (EPSG:32631, reprojected to EPSG:4326)"
    out = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert list(out["zone_id"]) == ["A", "B"]
    assert out["geometry"].str.startswith("POINT (").all()


def test_csv_to_geojson_and_parquet(tmp_path: Path, fake_router: FakeRouter) -> None:
    source = tmp_path / "in.csv"
    write_rows(source, ODD_ROWS)
    route_file(source, tmp_path / "out.geojson", fake_router)
    out = gpd.read_file(tmp_path / "out.geojson")
    assert list(out["code"]) == [row[1] for row in ODD_ROWS[1:]]
    assert out.geometry.iloc[0].equals(shapely.Point(0.5, 0.5))
    assert out.geometry.iloc[2] is None  # empty lon: no point
    route_file(source, tmp_path / "out.parquet", fake_router)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("code").to_pylist() == [row[1] for row in ODD_ROWS[1:]]
    assert table.column("zone_id").to_pylist()[0] == "A"
    assert math.isnan(float("nan"))


def test_summary_type(tmp_path: Path, fake_router: FakeRouter) -> None:
    summary, _ = routed(tmp_path, fake_router, [["lon", "lat"], ["0.5", "0.5"]])
    assert isinstance(summary, RouteFileSummary)
    assert summary.rows_per_s > 0


# --------------------------------------------------------------------------- the real engine


@pytest.fixture(scope="module")
def demo_points(demo_profile_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Demo address points plus points right on kelurahan boundaries (near_boundary rows)."""
    addresses = pd.read_csv(demo_profile_path.parent / "address_points.csv").iloc[::97]
    kelurahan = gpd.read_file(demo_profile_path.parent / "kelurahan.geojson")
    edge = shapely.get_coordinates(kelurahan.boundary.iloc[:6])[::7] + 1e-6
    lon = np.concatenate([addresses["lon"].to_numpy(), edge[:, 0]])
    lat = np.concatenate([addresses["lat"].to_numpy(), edge[:, 1]])
    return lon, lat


def test_demo_city_xy_in_utm_agrees_with_route(
    tmp_path: Path, demo_router: Any, demo_points: tuple[np.ndarray, np.ndarray]
) -> None:
    lon, lat = demo_points
    to_utm = pyproj.Transformer.from_crs(4326, 32748, always_xy=True)
    x, y = to_utm.transform(lon, lat)
    source = tmp_path / "utm.csv"
    pd.DataFrame({"ref": [f"{i:05d}" for i in range(len(x))], "e": x, "n": y}).to_csv(
        source, index=False
    )
    target = tmp_path / "utm_out.parquet"
    summary = route_file(
        source, target, demo_router, x_field="e", y_field="n", crs="EPSG:32748", k=2
    )
    assert summary.coordinates == "columns e/n in EPSG:32748"
    assert summary.invalid == 0
    out = pq.read_table(target).to_pandas()
    assert list(out["ref"]) == [f"{i:05d}" for i in range(len(x))]
    statuses = set()
    for i in range(len(lon)):
        result = demo_router.route(float(lon[i]), float(lat[i]), k=2)
        for layer, match in result.zones.items():
            statuses.add(match.status)
            assert out[f"{layer}_id"][i] == (match.zone_id or ""), (i, layer)
            assert out[f"{layer}_status"][i] == match.status
            joined = ";".join(c.zone_id for c in match.candidates)
            assert out[f"{layer}_candidates"][i] == joined, (i, layer)
        for kind, responders in result.responders.items():
            assert out[f"{kind}_id"][i] == responders[0].facility_id
            assert out[f"{kind}_id_2"][i] == responders[1].facility_id
            assert out[f"{kind}_distance_m"][i] == pytest.approx(
                responders[0].distance_m, abs=0.051
            )
    assert {ZoneStatus.INSIDE, ZoneStatus.NEAR_BOUNDARY} <= statuses


def test_demo_city_bad_rows(tmp_path: Path, demo_router: Any) -> None:
    rows = [
        ["id", "lon", "lat"],
        ["1", "107.6", "-6.9"],
        ["2", "-6.9", "107.6"],
        ["3", "abc", "-6.9"],
        ["4", "", ""],
        ["5", "107.6", "-91"],
        ["6", "0", "0"],
    ]
    summary, out = routed(tmp_path, demo_router, rows)
    records = [dict(zip(out[0], row, strict=True)) for row in out[1:]]
    assert [r["id"] for r in records] == ["1", "2", "3", "4", "5", "6"]
    assert [r["kelurahan_status"] == "invalid_coordinates" for r in records] == [
        False,
        True,
        True,
        True,
        True,
        False,
    ]
    assert records[0]["kelurahan_id"]
    assert records[2]["route_error"] == "non-numeric lon: 'abc'"
    assert records[3]["route_error"] == "empty lon"
    assert "latitude" in records[4]["route_error"]
    assert records[5]["kelurahan_status"] == "outside_coverage"
    assert records[5]["fire_station_id"]  # nearest still answered far outside the city
    assert summary.invalid == 4
