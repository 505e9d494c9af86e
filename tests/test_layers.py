"""Reading zone layers: formats, CRS, ids, geometry checks, versions."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo_router.city.layers import (
    ZoneLayer,
    layer_version,
    load_layer,
    make_layer,
    read_layer_frame,
)
from geo_router.errors import LayerValidationError, ProfileError
from geo_router.settings import validation_settings


@dataclass(frozen=True)
class Spec:
    """Stand-in for profile.LayerSpec."""

    name: str
    path: Path
    id_field: str
    name_field: str | None = None
    parent: str | None = None
    repair: bool = False


def zones_frame(ids: list[object] | None = None) -> gpd.GeoDataFrame:
    """Three squares west-east near Bandung, with an int id, a name and a date column."""
    boxes = [shapely.box(107.60 + i * 0.01, -6.91, 107.61 + i * 0.01, -6.90) for i in range(3)]
    return gpd.GeoDataFrame(
        {
            "code": ids if ids is not None else [12, 7, 30],
            "label": ["Ancol", "Braga", "Cibadak"],
            "pop": [1000, 2000, 3000],
            "when": gpd.pd.to_datetime(["2020-01-02", "2021-03-04", None]),
        },
        geometry=boxes,
        crs="EPSG:4326",
    )


def write(gdf: gpd.GeoDataFrame, path: Path, driver: str | None = None) -> Path:
    if path.suffix == ".parquet":
        gdf.to_parquet(path)
    else:
        gdf.to_file(path, driver=driver)
    return path


@pytest.mark.parametrize(
    ("filename", "driver"),
    [
        ("zones.geojson", "GeoJSON"),
        ("zones.gpkg", "GPKG"),
        ("zones.shp", "ESRI Shapefile"),
        ("zones.fgb", "FlatGeobuf"),
        ("zones.parquet", None),
    ],
)
def test_formats(tmp_path: Path, filename: str, driver: str | None) -> None:
    gdf = zones_frame().drop(columns=["when"]) if driver == "ESRI Shapefile" else zones_frame()
    path = write(gdf, tmp_path / filename, driver)
    layer = load_layer(Spec("kelurahan", path, "code", "label", parent="kecamatan"))
    assert isinstance(layer, ZoneLayer)
    assert layer.names is not None
    # FlatGeobuf stores features in its spatial index order
    assert dict(zip(layer.ids, layer.names, strict=True)) == {
        "12": "Ancol",
        "7": "Braga",
        "30": "Cibadak",
    }
    assert layer.parent == "kecamatan" and layer.source == path and layer.name == "kelurahan"
    assert all(g.geom_type in ("Polygon", "MultiPolygon") for g in layer.geometries)
    assert "pop" in layer.properties.columns and "code" not in layer.properties.columns
    assert len(layer.version) == 12 and layer.repairs == []
    assert layer.bounds == pytest.approx((107.60, -6.91, 107.63, -6.90))


def test_zipped_shapefile(tmp_path: Path) -> None:
    shp = write(zones_frame().drop(columns=["when"]), tmp_path / "zones.shp", "ESRI Shapefile")
    archive = tmp_path / "zones.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in tmp_path.glob("zones.*"):
            if part != archive:
                zf.write(part, part.name)
    layer = load_layer(Spec("k", archive, "code"))
    assert layer.ids.tolist() == ["12", "7", "30"] and layer.names is None
    assert layer.version == layer_version(archive)
    assert layer_version(shp) != layer_version(archive)


def test_kml(tmp_path: Path) -> None:
    gdf = zones_frame()[["label", "geometry"]].rename(columns={"label": "Name"})
    path = write(gdf, tmp_path / "zones.kml", "KML")
    assert "Name" in read_layer_frame(path).columns
    layer = load_layer(Spec("k", path, "Name"))
    assert sorted(layer.ids) == ["Ancol", "Braga", "Cibadak"]


def test_properties_are_json_safe(tmp_path: Path) -> None:
    layer = load_layer(Spec("k", write(zones_frame(), tmp_path / "z.gpkg", "GPKG"), "code"))
    records = layer.properties.to_dict("records")
    assert records[0]["when"] == "2020-01-02T00:00:00" and records[2]["when"] is None
    json.dumps(records, default=int)  # numpy ints aside, everything is plain


def test_reprojects_to_wgs84(tmp_path: Path) -> None:
    path = write(zones_frame().to_crs(32748), tmp_path / "utm.gpkg", "GPKG")
    layer = load_layer(Spec("k", path, "code"))
    assert layer.bounds == pytest.approx((107.60, -6.91, 107.63, -6.90), abs=1e-7)


def test_no_crs(tmp_path: Path) -> None:
    lonlat = zones_frame().set_crs(None, allow_override=True)
    # GeoJSON always says 4326, so use a shapefile without .prj
    write(lonlat.drop(columns=["when"]), tmp_path / "nocrs.shp", "ESRI Shapefile")
    path = tmp_path / "nocrs.shp"
    assert not (tmp_path / "nocrs.prj").exists()
    assert load_layer(Spec("k", path, "code")).bounds[0] == pytest.approx(107.60)
    metres = zones_frame().to_crs(32748).set_crs(None, allow_override=True).drop(columns=["when"])
    write(metres, tmp_path / "metres.shp", "ESRI Shapefile")
    with pytest.raises(ProfileError, match="no CRS"):
        load_layer(Spec("k", tmp_path / "metres.shp", "code"))


def test_float_and_text_ids(tmp_path: Path) -> None:
    path = write(zones_frame([104.0, 5.0, 2.5]), tmp_path / "f.geojson", "GeoJSON")
    assert load_layer(Spec("k", path, "code")).ids.tolist() == ["104", "5", "2.5"]
    path = write(zones_frame(["id3273", "A-1", "007"]), tmp_path / "s.geojson", "GeoJSON")
    assert load_layer(Spec("k", path, "code")).ids.tolist() == ["id3273", "A-1", "007"]


def test_missing_file() -> None:
    with pytest.raises(ProfileError, match=r"not found: /nowhere/zones\.geojson"):
        load_layer(Spec("k", Path("/nowhere/zones.geojson"), "code"))


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.geojson"
    path.write_text("{not json")
    with pytest.raises(ProfileError, match="cannot read layer file"):
        load_layer(Spec("k", path, "code"))


def test_missing_fields_list_columns(tmp_path: Path) -> None:
    path = write(zones_frame(), tmp_path / "z.geojson", "GeoJSON")
    with pytest.raises(ProfileError) as err:
        load_layer(Spec("k", path, "kode"))
    assert "id_field 'kode'" in err.value.message and str(path) in err.value.message
    assert "code, label, pop, when" in err.value.message
    assert err.value.detail["field"] == "kode"
    with pytest.raises(ProfileError, match="name_field 'nama'"):
        load_layer(Spec("k", path, "code", "nama"))


def test_duplicate_and_missing_ids(tmp_path: Path) -> None:
    path = write(zones_frame([1, 2, 1]), tmp_path / "d.geojson", "GeoJSON")
    with pytest.raises(ProfileError, match="duplicate 'code' values: 1") as err:
        load_layer(Spec("k", path, "code"))
    assert err.value.detail["duplicates"] == ["1"]
    path = write(zones_frame([1, None, 3]), tmp_path / "n.geojson", "GeoJSON")
    with pytest.raises(ProfileError, match=r"have no 'code' \(rows \[1\]\)"):
        load_layer(Spec("k", path, "code"))


def test_non_polygons_are_refused(tmp_path: Path) -> None:
    gdf = zones_frame()
    gdf.loc[1, "geometry"] = shapely.Point(107.61, -6.905)
    path = write(gdf, tmp_path / "mixed.gpkg", "GPKG")
    with pytest.raises(LayerValidationError, match=r"7 \(Point\)") as err:
        load_layer(Spec("k", path, "code"))
    assert err.value.detail["report"]["non_polygon"][0]["row"] == 1


def bowtie_frame(valid_repairable: bool) -> gpd.GeoDataFrame:
    gdf = zones_frame()
    if valid_repairable:
        # a spike ring: self-touching, make_valid keeps the area exactly
        ring = [(107.61, -6.91), (107.62, -6.91), (107.62, -6.90), (107.61, -6.90), (107.61, -6.91)]
        spike = [*ring[:2], (107.625, -6.91), (107.62, -6.91), *ring[2:]]
        gdf.loc[1, "geometry"] = shapely.Polygon(spike)
    else:
        gdf.loc[1, "geometry"] = shapely.Polygon(
            [(107.61, -6.91), (107.62, -6.90), (107.62, -6.91), (107.61, -6.90)]
        )
    return gdf


def test_invalid_geometry_refused_unless_repair(tmp_path: Path) -> None:
    path = write(bowtie_frame(True), tmp_path / "spike.gpkg", "GPKG")
    with pytest.raises(LayerValidationError) as err:
        load_layer(Spec("k", path, "code"))
    assert "7:" in err.value.message and "repair = true" in err.value.message
    assert err.value.detail["report"]["invalid"][0]["id"] == "7"
    layer = load_layer(Spec("k", path, "code", repair=True))
    assert [r.id for r in layer.repairs] == ["7"]
    assert all(shapely.is_valid(layer.geometries))


def test_repair_argument_overrides_spec(tmp_path: Path) -> None:
    path = write(bowtie_frame(True), tmp_path / "spike.gpkg", "GPKG")
    with pytest.raises(LayerValidationError):
        load_layer(Spec("k", path, "code", repair=True), repair=False)
    assert load_layer(Spec("k", path, "code"), repair=True).repairs


def test_unsafe_repair_is_refused(tmp_path: Path) -> None:
    path = write(bowtie_frame(False), tmp_path / "bowtie.gpkg", "GPKG")
    with pytest.raises(LayerValidationError, match="cannot be repaired safely"):
        load_layer(Spec("k", path, "code", repair=True))


def test_repair_refusal_names_the_file_and_follows_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gdf = zones_frame()
    shell = gdf.geometry.iloc[1]
    hole = shapely.box(107.614, -6.911, 107.616, -6.909)  # half outside: ~2 % area change
    gdf.loc[1, "geometry"] = shapely.Polygon(shell.exterior.coords, [hole.exterior.coords])
    path = write(gdf, tmp_path / "holey.gpkg", "GPKG")
    with pytest.raises(LayerValidationError, match=r"holey\.gpkg: 1 feature") as err:
        load_layer(Spec("k", path, "code", repair=True))
    assert err.value.detail["path"] == str(path)
    monkeypatch.setenv("GEO_ROUTER_VALIDATION_MAX_REPAIR_CHANGE", "0.05")
    validation_settings.cache_clear()
    (record,) = load_layer(Spec("k", path, "code", repair=True)).repairs
    assert 0.01 < record.change_ratio < 0.05


def test_layer_version(tmp_path: Path) -> None:
    path = tmp_path / "a.geojson"
    path.write_bytes(b"hello")
    assert layer_version(path) == hashlib.sha256(b"hello").hexdigest()[:12]
    path.write_bytes(b"hello!")
    assert layer_version(path) == hashlib.sha256(b"hello!").hexdigest()[:12]
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "x.txt").write_bytes(b"1")
    first = layer_version(folder)
    (folder / "x.txt").write_bytes(b"2")
    assert layer_version(folder) != first and len(first) == 12
    with pytest.raises(ProfileError):
        layer_version(tmp_path / "missing")


def test_shapefile_version_covers_sidecars(tmp_path: Path) -> None:
    shp = write(zones_frame().drop(columns=["when"]), tmp_path / "z.shp", "ESRI Shapefile")
    before = layer_version(shp)
    dbf = tmp_path / "z.dbf"
    dbf.write_bytes(dbf.read_bytes() + b" ")
    assert layer_version(shp) != before


def test_make_layer() -> None:
    layer = make_layer("m", [1, 2.0], [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    assert layer.ids.tolist() == ["1", "2"] and layer.names is None and len(layer) == 2
    assert isinstance(layer.geometries, np.ndarray)
