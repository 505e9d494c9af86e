"""Reading an uploaded layer file: formats, reprojection, size and vertex limits."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest

from geo_router.errors import InputError, UploadTooLargeError
from geo_router.planning.upload_file import (
    UnreadableUploadError,
    UploadLimits,
    checksum_of,
    read_upload,
)

EXAMPLE = Path(__file__).parents[1] / "zones_data" / "examples" / "kelurahan_split.geojson"
LIMITS = UploadLimits()


def _frame() -> gpd.GeoDataFrame:
    return gpd.read_file(EXAMPLE)


def zipped_shapefile(frame: gpd.GeoDataFrame, folder: Path) -> bytes:
    """The frame as a zipped Shapefile (the bytes a planner uploads)."""
    pyogrio.write_dataframe(frame, folder / "zones.shp")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for part in sorted(folder.glob("zones.*")):
            archive.write(part, part.name)
    return out.getvalue()


def geopackage(frame: gpd.GeoDataFrame, folder: Path) -> bytes:
    """The frame as a GeoPackage's bytes."""
    path = folder / "zones.gpkg"
    pyogrio.write_dataframe(frame, path, driver="GPKG")
    return path.read_bytes()


def test_geojson_is_read_in_lon_lat() -> None:
    gdf = read_upload(EXAMPLE.read_bytes(), "kelurahan.geojson", LIMITS)
    assert len(gdf) == 152 and gdf.crs.to_epsg() == 4326
    assert {"kode", "nama"} <= set(gdf.columns)


def test_zipped_shapefile_and_geopackage_are_read(tmp_path: Path) -> None:
    frame = _frame()
    (tmp_path / "shp").mkdir()
    from_zip = read_upload(zipped_shapefile(frame, tmp_path / "shp"), "zones.zip", LIMITS)
    from_gpkg = read_upload(geopackage(frame, tmp_path), "zones.GPKG", LIMITS)
    for gdf in (from_zip, from_gpkg):
        assert len(gdf) == 152 and gdf.crs.to_epsg() == 4326
        assert sorted(gdf["kode"].astype(str)) == sorted(frame["kode"].astype(str))


@pytest.mark.parametrize(("driver", "name"), [("FlatGeobuf", "zones.fgb"), ("KML", "zones.kml")])
def test_flatgeobuf_and_kml_are_read(tmp_path: Path, driver: str, name: str) -> None:
    pyogrio.write_dataframe(_frame(), tmp_path / name, driver=driver)
    gdf = read_upload((tmp_path / name).read_bytes(), name, LIMITS)
    assert len(gdf) == 152 and gdf.crs.to_epsg() == 4326
    assert sorted(gdf["kode"].astype(str)) == sorted(_frame()["kode"].astype(str))


def test_another_crs_is_reprojected(tmp_path: Path) -> None:
    utm = _frame().to_crs(32748)
    assert utm.total_bounds[0] > 1000  # metres, not degrees
    gdf = read_upload(geopackage(utm, tmp_path), "utm.gpkg", LIMITS)
    original = _frame().total_bounds
    assert gdf.crs.to_epsg() == 4326
    assert abs(gdf.total_bounds - original).max() < 1e-6


def test_too_large_is_413_before_reading() -> None:
    with pytest.raises(UploadTooLargeError, match="limit of 1024"):
        read_upload(b"x" * 2048, "big.geojson", UploadLimits(max_bytes=1024))


def test_too_many_vertices_is_422() -> None:
    with pytest.raises(InputError, match="vertices") as caught:
        read_upload(EXAMPLE.read_bytes(), "k.geojson", UploadLimits(max_vertices=100))
    assert caught.value.detail["limit"] == 100 and caught.value.detail["vertices"] > 100


def test_unknown_format_is_422_and_unreadable_bytes_say_why() -> None:
    with pytest.raises(InputError, match=r"\.csv"):
        read_upload(b"a,b\n1,2\n", "zones.csv", LIMITS)
    with pytest.raises(UnreadableUploadError) as caught:
        read_upload(b"this is not GeoJSON", "zones.geojson", LIMITS)
    assert "/tmp" not in caught.value.message  # no server path in what a planner sees


def test_checksum_is_the_layer_version_of_the_same_bytes() -> None:
    from geo_router.city.layers import layer_version

    assert checksum_of(EXAMPLE.read_bytes()) == layer_version(EXAMPLE)
