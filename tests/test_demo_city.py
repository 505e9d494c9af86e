"""The bundled demo city: reproducible, and a clean tiling with consistent labels."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "zones_data" / "demo_city"
GENERATOR = REPO / "zones_data" / "generate_demo_city.py"
TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32748", always_xy=True)
LAYER_FILES = [
    "kelurahan.geojson",
    "kecamatan.geojson",
    "fire_districts.geojson",
    "police_sectors.geojson",
]


def read_layer(name: str) -> tuple[list[dict[str, str]], np.ndarray]:
    collection = json.loads((DEMO / name).read_text(encoding="utf-8"))
    props = [f["properties"] for f in collection["features"]]
    geoms = np.array(
        [shapely.from_geojson(json.dumps(f["geometry"])) for f in collection["features"]]
    )
    return props, geoms


def to_utm(geoms: np.ndarray) -> np.ndarray:
    def project(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(TO_UTM.transform(xy[:, 0], xy[:, 1]))

    return shapely.transform(geoms, project)


def read_csv(name: str) -> pd.DataFrame:
    frame = pd.read_csv(DEMO / name, dtype=str, keep_default_na=False)
    frame["lon"] = frame["lon"].astype(float)
    frame["lat"] = frame["lat"].astype(float)
    return frame


@pytest.fixture(scope="module")
def city_utm() -> shapely.Polygon:
    return shapely.union_all(to_utm(read_layer("kelurahan.geojson")[1]))


def test_generator_is_deterministic(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(GENERATOR), str(tmp_path)], check=True, timeout=120)
    committed = sorted(p.name for p in DEMO.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_profile_names_every_file() -> None:
    profile = tomllib.loads((DEMO / "city.toml").read_text(encoding="utf-8"))
    assert profile["name"] == "Kota Contoh"
    assert [layer["name"] for layer in profile["layers"]] == [
        "kelurahan",
        "kecamatan",
        "fire_district",
        "police_sector",
    ]
    assert [f["type"] for f in profile["facilities"]] == ["fire_station", "police_post", "hospital"]
    paths = [x["path"] for x in profile["layers"] + profile["facilities"]]
    paths.append(profile["address_points"]["path"])
    assert all((DEMO / p).is_file() for p in paths)
    codes = {c["code"]: c for c in profile["categories"]}
    assert set(codes) == {
        "fire",
        "crime",
        "medical",
        "flooding",
        "water_pipe",
        "road_damage",
        "waste",
        "noise",
    }
    assert codes["noise"]["responders"] == ["police_post"]
    assert codes["fire"]["emergency"] is True


@pytest.mark.parametrize("name", LAYER_FILES)
def test_layer_is_valid_rfc7946_tiling(name: str, city_utm: shapely.Polygon) -> None:
    collection = json.loads((DEMO / name).read_text(encoding="utf-8"))
    assert "crs" not in collection
    props, geoms = read_layer(name)
    assert (shapely.get_type_id(geoms) == 3).all()  # single Polygons
    assert shapely.is_valid(geoms).all()
    assert shapely.is_ccw(shapely.get_exterior_ring(geoms)).all()
    assert shapely.coverage_is_valid(geoms)
    utm = to_utm(geoms)
    total = shapely.area(utm).sum()
    assert abs(shapely.union_all(utm).area - total) <= 1e-6 * total  # no overlaps
    assert abs(total - city_utm.area) <= 1e-6 * total  # same outline as the kelurahan
    assert 150e6 <= total <= 190e6
    codes = [p["kode"] for p in props]
    assert len(set(codes)) == len(codes) and codes == sorted(codes)
    assert len({p["nama"] for p in props}) == len(props)


def test_city_is_one_piece_without_holes(city_utm: shapely.Polygon) -> None:
    assert city_utm.geom_type == "Polygon"
    assert len(city_utm.interiors) == 0


def test_counts_and_vertices() -> None:
    kel_props, kel = read_layer("kelurahan.geojson")
    assert 130 <= len(kel) <= 170
    assert np.median(shapely.get_num_coordinates(kel)) >= 100
    assert 25 <= len(read_layer("kecamatan.geojson")[1]) <= 35
    assert 8 <= len(read_layer("fire_districts.geojson")[1]) <= 12
    assert 25 <= len(read_layer("police_sectors.geojson")[1]) <= 35
    assert all(
        len(p["kode"]) == 10 and p["kode"].startswith(p["kecamatan_kode"]) for p in kel_props
    )
    assert 8 <= len(read_csv("fire_stations.csv")) <= 12
    assert 25 <= len(read_csv("police_posts.csv")) <= 35
    assert 10 <= len(read_csv("hospitals.csv")) <= 14
    assert 2000 <= len(read_csv("address_points.csv")) <= 5000


def test_each_kecamatan_is_the_dissolve_of_its_kelurahan() -> None:
    kel_props, kel = read_layer("kelurahan.geojson")
    kec_props, kec = read_layer("kecamatan.geojson")
    parent = np.array([p["kecamatan_kode"] for p in kel_props])
    assert set(parent) == {p["kode"] for p in kec_props}
    sizes = pd.Series(parent).value_counts()
    assert sizes.min() >= 3 and sizes.max() <= 8
    kel_utm, kec_utm = to_utm(kel), to_utm(kec)
    for props, geom in zip(kec_props, kec_utm, strict=True):
        dissolved = shapely.union_all(kel_utm[parent == props["kode"]])
        assert shapely.symmetric_difference(dissolved, geom).area < 1.0, props["kode"]


@pytest.mark.parametrize(
    ("layer", "facilities"),
    [
        ("fire_districts.geojson", "fire_stations.csv"),
        ("police_sectors.geojson", "police_posts.csv"),
    ],
)
def test_each_station_sits_in_its_own_zone(layer: str, facilities: str) -> None:
    _, zones = read_layer(layer)
    frame = read_csv(facilities)
    assert shapely.contains_xy(zones, frame["lon"].to_numpy(), frame["lat"].to_numpy()).all()


@pytest.mark.parametrize(
    "name", ["fire_stations.csv", "police_posts.csv", "hospitals.csv", "address_points.csv"]
)
def test_points_inside_the_city(name: str) -> None:
    city = shapely.union_all(read_layer("kelurahan.geojson")[1])
    frame = read_csv(name)
    assert shapely.contains_xy(city, frame["lon"].to_numpy(), frame["lat"].to_numpy()).all()
    assert frame["id"].is_unique


def test_address_labels_agree_with_point_in_polygon() -> None:
    kel_props, kel = read_layer("kelurahan.geojson")
    kec_props, _ = read_layer("kecamatan.geojson")
    kec_name = {p["kode"]: p["nama"] for p in kec_props}
    frame = read_csv("address_points.csv")
    pts = shapely.points(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    point_i, zone_i = shapely.STRtree(kel).query(pts, predicate="within")
    assert np.array_equal(np.sort(point_i), np.arange(len(frame)))  # exactly one each
    zone_of = np.empty(len(frame), int)
    zone_of[point_i] = zone_i
    assert (
        frame["kelurahan"].to_numpy() == np.array([p["nama"] for p in kel_props])[zone_of]
    ).all()
    expected_kec = [kec_name[kel_props[z]["kecamatan_kode"]] for z in zone_of]
    assert (frame["kecamatan"].to_numpy() == np.array(expected_kec)).all()


def test_house_numbers_run_along_each_street() -> None:
    frame = read_csv("address_points.csv")
    assert frame["street"].str.startswith("Jalan ").all()
    assert not frame.duplicated(["street", "number"]).any()
    assert frame["rt"].str.fullmatch(r"\d\d").all() and frame["rw"].str.fullmatch(r"\d\d").all()
    x, y = TO_UTM.transform(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    frame = frame.assign(n=frame["number"].astype(int), x=x, y=y)
    for _street, houses in frame.groupby("street"):
        odd = houses[houses["n"] % 2 == 1].sort_values("n")
        # Consecutive odd houses are neighbours along the line, not scattered over the city.
        step = np.hypot(np.diff(odd["x"]), np.diff(odd["y"]))
        assert np.median(step) < 150.0
