"""geo-router route / route-file / validate through typer's CliRunner."""

from __future__ import annotations

import csv
from pathlib import Path

import geopandas as gpd
import orjson
import pyproj
import pytest
import shapely
from typer.testing import CliRunner

from geo_router.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def known_point(demo_profile_path: Path) -> dict[str, object]:
    """A point well inside one demo kelurahan, with that kelurahan's code and kecamatan."""
    kelurahan = gpd.read_file(demo_profile_path.parent / "kelurahan.geojson")
    row = kelurahan.iloc[17]
    # deep inside: the centre of the largest inscribed circle, far from every boundary
    centre = shapely.maximum_inscribed_circle(row.geometry).coords[0]
    return {
        "lon": centre[0],
        "lat": centre[1],
        "kelurahan": row["kode"],
        "kecamatan": row["kecamatan_kode"],
    }


CRS = ("--crs", "EPSG:32748")


def point_args(point: dict[str, object]) -> list[str]:
    return ["route", "--lon", str(point["lon"]), "--lat", str(point["lat"])]


def test_route_prints_json_with_the_zones(known_point: dict[str, object]) -> None:
    result = runner.invoke(app, point_args(known_point))
    assert result.exit_code == 0, result.output
    answer = orjson.loads(result.stdout)
    assert answer["zones"]["kelurahan"]["zone_id"] == known_point["kelurahan"]
    assert answer["zones"]["kelurahan"]["status"] == "inside"
    assert answer["zones"]["kecamatan"]["zone_id"] == known_point["kecamatan"]
    assert set(answer["zones"]) == {"kelurahan", "kecamatan", "fire_district", "police_sector"}
    assert len(answer["responders"]["fire_station"]) == 3
    assert result.stdout.startswith("{\n  ")  # indented


def test_route_with_category_and_k(known_point: dict[str, object]) -> None:
    result = runner.invoke(
        app,
        [*point_args(known_point), "--category", "fire", "--k", "1"],
    )
    assert result.exit_code == 0, result.output
    answer = orjson.loads(result.stdout)
    assert answer["category"]["code"] == "fire"
    assert list(answer["responders"]) == ["fire_station"]
    assert len(answer["responders"]["fire_station"]) == 1


def test_route_projected_point(known_point: dict[str, object], demo_profile_path: Path) -> None:
    to_utm = pyproj.Transformer.from_crs(4326, 32748, always_xy=True)
    x, y = to_utm.transform(known_point["lon"], known_point["lat"])
    result = runner.invoke(
        app,
        ["route", "--city", str(demo_profile_path), "--x", str(x), "--y", str(y), *CRS],
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["zones"]["kelurahan"]["zone_id"] == known_point["kelurahan"]


def test_city_from_environment(known_point: dict[str, object], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["route", "--lon", "107.6", "--lat", "-6.9"],
        env={"GEO_ROUTER_CITY": str(tmp_path / "nowhere.toml")},
    )
    assert result.exit_code == 2
    assert "nowhere.toml" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lon", "200", "--lat", "-6.9"], "longitude"),
        (["--lon", "107.6"], "--lat"),
        (["--x", "1", "--y", "2"], "--crs"),
        (["--x", "1", "--y", "2", "--crs", "EPSG:999999"], "EPSG:999999"),
        (["--lon", "107.6", "--lat", "-6.9", "--category", "nope"], "nope"),
    ],
)
def test_route_errors_are_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["route", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_route_file(tmp_path: Path, known_point: dict[str, object]) -> None:
    source = tmp_path / "calls.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ticket", "Longitude", "Latitude"])
        writer.writerow(["007", known_point["lon"], known_point["lat"]])
        writer.writerow(["008", "", "-6.9"])
    target = tmp_path / "routed.csv"
    result = runner.invoke(app, ["route-file", str(source), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "routed 2 rows (1 valid, 1 invalid)" in result.stdout
    assert "rows/s" in result.stdout
    assert "columns Longitude/Latitude" in result.stderr
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["ticket"] == "007"
    assert rows[0]["kelurahan_id"] == known_point["kelurahan"]
    assert rows[1]["kelurahan_status"] == "invalid_coordinates"
    assert rows[1]["route_error"] == "empty Longitude"


def test_route_file_projected(tmp_path: Path, known_point: dict[str, object]) -> None:
    to_utm = pyproj.Transformer.from_crs(4326, 32748, always_xy=True)
    x, y = to_utm.transform(known_point["lon"], known_point["lat"])
    source = tmp_path / "utm.csv"
    source.write_text(f"id,e,n\n1,{x},{y}\n2,1e30,1e30\n")
    target = tmp_path / "utm_out.csv"
    fields = ["--x-field", "e", "--y-field", "n", *CRS, "--k", "2"]
    result = runner.invoke(app, ["route-file", str(source), "-o", str(target), *fields])
    assert result.exit_code == 0, result.output
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["kelurahan_id"] == known_point["kelurahan"]
    assert rows[0]["hospital_id_2"]
    assert rows[1]["route_error"]


def test_route_file_errors(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["route-file", str(source), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert "cannot tell which columns" in result.stderr
    result = runner.invoke(app, ["route-file", str(tmp_path / "none.csv"), "-o", "o.csv"])
    assert result.exit_code == 2
    assert "not found" in result.stderr


# --------------------------------------------------------------------------- validate


def write_layer(path: Path, ids: list[str], geometries: list[shapely.Geometry]) -> Path:
    gpd.GeoDataFrame({"code": ids}, geometry=geometries, crs="EPSG:4326").to_file(path)
    return path


def test_validate_accepts_a_clean_layer(tmp_path: Path) -> None:
    layer = write_layer(
        tmp_path / "ok.geojson",
        ["a", "b"],
        [shapely.box(107.60, -6.91, 107.61, -6.90), shapely.box(107.61, -6.91, 107.62, -6.90)],
    )
    result = runner.invoke(app, ["validate", str(layer), "--id-field", "code"])
    assert result.exit_code == 0, result.output
    assert "accepted" in result.stdout


def test_validate_refuses_overlaps_and_bow_ties(tmp_path: Path) -> None:
    bow_tie = shapely.Polygon(
        [(107.63, -6.91), (107.64, -6.90), (107.64, -6.91), (107.63, -6.90), (107.63, -6.91)]
    )
    layer = write_layer(
        tmp_path / "broken.geojson",
        ["a", "b", "c"],
        [
            shapely.box(107.60, -6.91, 107.612, -6.90),
            shapely.box(107.61, -6.91, 107.62, -6.90),  # overlaps "a" by ~0.002 x 0.01 deg
            bow_tie,
        ],
    )
    result = runner.invoke(app, ["validate", str(layer), "--id-field", "code"])
    assert result.exit_code == 1, result.output
    assert "REFUSED" in result.stdout
    assert "overlaps" in result.stdout
    assert "a / b" in result.stdout
    assert "m2" in result.stdout
    assert "c (row 2)" in result.stdout  # the bow-tie, named
    as_json = runner.invoke(app, ["validate", str(layer), "--id-field", "code", "--json"])
    assert as_json.exit_code == 1
    report = orjson.loads(as_json.stdout)
    assert report["refused"] is True
    assert [f["id"] for f in report["invalid"]] == ["c"]
    (overlap,) = report["overlaps"]
    # 0.002 deg x 0.01 deg near 6.9 S: about 220 m x 1,100 m
    assert 2.0e5 < overlap["area_m2"] < 3.0e5


def test_validate_unreadable_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.geojson"
    junk.write_text("{not json")
    result = runner.invoke(app, ["validate", str(junk), "--id-field", "code"])
    assert result.exit_code == 2
    assert "junk.geojson" in result.stderr
    missing = runner.invoke(app, ["validate", str(tmp_path / "no.gpkg"), "--id-field", "code"])
    assert missing.exit_code == 2
    layer = write_layer(tmp_path / "ok.geojson", ["a"], [shapely.box(0, 0, 1, 1)])
    wrong_field = runner.invoke(app, ["validate", str(layer), "--id-field", "kode"])
    assert wrong_field.exit_code == 2
    assert "kode" in wrong_field.stderr


def test_validate_against_the_city_accepts_the_staged_split() -> None:
    from zones_data import KELURAHAN_SPLIT

    result = runner.invoke(app, ["validate", str(KELURAHAN_SPLIT), "--layer", "kelurahan"])
    assert result.exit_code == 0, result.output
    assert "kelurahan: 152 features: accepted (0 errors, 0 warnings)" in result.stdout
    assert "what changes in kelurahan: 1 added, 0 removed, 1 reshaped" in result.stdout
    as_json = runner.invoke(
        app, ["validate", str(KELURAHAN_SPLIT), "--layer", "kelurahan", "--json"]
    )
    data = orjson.loads(as_json.stdout)
    assert data["blocking"] is False and data["layer"] == "kelurahan"
    assert data["changes"]["counts"]["reshaped"] == 1 and data["repairs"] == []


def test_validate_against_the_city_refuses_the_broken_split() -> None:
    from zones_data import KELURAHAN_SPLIT_BROKEN

    result = runner.invoke(
        app, ["validate", str(KELURAHAN_SPLIT_BROKEN), "--layer", "kelurahan", "--json"]
    )
    assert result.exit_code == 1, result.output
    data = orjson.loads(result.stdout)
    assert data["counts"]["errors"] == 2
    assert {f["code"] for f in data["findings"] if f["severity"] == "error"} == {
        "overlap",
        "not_nested",
    }
    # with a 90 % share the 5 % straddle is only a sliver warning; the overlap still blocks
    loose = runner.invoke(
        app,
        ["validate", str(KELURAHAN_SPLIT_BROKEN), "--layer", "kelurahan", "--nesting-share", "0.9"],
    )
    assert loose.exit_code == 1 and "not_nested" not in loose.stdout
    assert "nesting slivers: 1 (warning, nesting_sliver)" in loose.stdout


def test_validate_needs_an_id_field_or_a_layer(tmp_path: Path) -> None:
    layer = write_layer(tmp_path / "ok.geojson", ["a"], [shapely.box(0, 0, 1, 1)])
    result = runner.invoke(app, ["validate", str(layer)])
    assert result.exit_code == 2 and "--id-field" in result.stderr
    unknown = runner.invoke(app, ["validate", str(layer), "--layer", "desa"])
    assert unknown.exit_code == 2 and "no layer 'desa'" in unknown.stderr


def test_validate_repairs_only_when_asked_and_within_the_threshold(tmp_path: Path) -> None:
    shell = shapely.box(107.60, -6.91, 107.61, -6.90)
    hole = shapely.box(107.604, -6.911, 107.606, -6.909)  # half outside: ~2 % area change
    broken = shapely.Polygon(shell.exterior.coords, [hole.exterior.coords])
    layer = write_layer(tmp_path / "holey.geojson", ["a"], [broken])
    plain = runner.invoke(app, ["validate", str(layer), "--id-field", "code"])
    assert plain.exit_code == 1 and "invalid geometries: 1" in plain.stdout
    refused = runner.invoke(app, ["validate", str(layer), "--id-field", "code", "--repair"])
    assert refused.exit_code == 2
    assert "holey.geojson" in refused.stderr and "cannot be repaired safely" in refused.stderr
    repaired = runner.invoke(
        app,
        ["validate", str(layer), "--id-field", "code", "--repair", "--max-repair-change", "0.05"],
    )
    assert repaired.exit_code == 0, repaired.output
    assert "repaired a (" in repaired.stdout and " m2 (" in repaired.stdout


def test_validate_against_a_boundary_file(tmp_path: Path) -> None:
    boundary = write_layer(
        tmp_path / "city.geojson", ["city"], [shapely.box(107.60, -6.91, 107.62, -6.90)]
    )
    layer = write_layer(
        tmp_path / "half.geojson", ["a"], [shapely.box(107.60, -6.91, 107.61, -6.90)]
    )
    result = runner.invoke(
        app, ["validate", str(layer), "--id-field", "code", "--boundary", str(boundary), "--json"]
    )
    assert result.exit_code == 1
    (finding,) = orjson.loads(result.stdout)["findings"]
    assert finding["code"] == "uncovered" and finding["area_m2"] > 1e6
