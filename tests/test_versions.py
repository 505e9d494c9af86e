"""Layer versions: uploads through the validation gate on both backends, retire, 409."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio
import pytest
import shapely

from geo_router.city.profile import load_profile
from geo_router.errors import InputError, NotFoundError, UploadTooLargeError, VersionConflictError
from geo_router.intake.reports.models import ServiceActor
from geo_router.planning.seeding import seed_from_profile
from geo_router.planning.upload_file import UploadLimits
from geo_router.planning.versions import LayerVersions, zones_of_version
from geo_router.store.layer_versions_repo import LayerVersionsRepo
from tests.test_upload_file import geopackage, zipped_shapefile

EXAMPLES = Path(__file__).parents[1] / "zones_data" / "examples"
GOOD = EXAMPLES / "kelurahan_split.geojson"
BROKEN = EXAMPLES / "kelurahan_split_broken.geojson"
WHO = ServiceActor(id="k1", name="planner-1", role="planner")


class Recorder:
    """Stands in for the audit service: keeps what it is asked to record."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []

    def record(
        self, action: str, purpose: str, who: Any, subjects: Any, detail: Any, **_: Any
    ) -> None:
        self.records.append((action, purpose, who.name, list(subjects), detail))


@pytest.fixture
def versions(migrated_engine: Any, demo_profile_path: Path) -> LayerVersions:
    """The demo city's versions in a fresh store of each backend, seeded from its profile."""
    service = LayerVersions(
        LayerVersionsRepo(migrated_engine),
        load_profile(demo_profile_path),
        audit=Recorder(),  # type: ignore[arg-type]
    )
    seed_from_profile(service)
    return service


def _codes(report: dict[str, Any]) -> set[str]:
    return {f["code"] for f in report["findings"] if f["severity"] == "error"}


def test_the_good_example_is_staged_without_errors(versions: LayerVersions) -> None:
    row = versions.upload("kelurahan", GOOD.read_bytes(), GOOD.name, "split of 3273011", WHO)
    assert row.state == "staged" and row.number == 2 and row.feature_count == 152
    assert row.report is not None and not row.report["blocking"] and not _codes(row.report)
    assert row.report["changes"] is not None  # what changes against version 1
    assert (row.author, row.note, row.source_name) == ("planner-1", "split of 3273011", GOOD.name)
    stored = versions.repo.get(row.id, with_zones=True)
    assert stored is not None
    zones = zones_of_version(stored, versions.spec("kelurahan"))
    assert len(zones.ids) == 152 and shapely.is_valid(zones.geometries).all()
    assert [(r[0], r[4]["event"], r[4]["version"]) for r in versions.audit.records] == [  # type: ignore[union-attr]
        ("layer_change", "upload", row.id)
    ]


def test_the_broken_example_is_staged_with_overlap_and_nesting_errors(
    versions: LayerVersions,
) -> None:
    row = versions.upload("kelurahan", BROKEN.read_bytes(), BROKEN.name, None, WHO)
    assert row.state == "staged" and row.report is not None and row.report["blocking"]
    assert {"overlap", "not_nested"} <= _codes(row.report)
    for finding in row.report["findings"]:
        assert finding["message"] and finding["ids"]
        assert finding["location"]["type"] in {
            "Point",
            "Polygon",
            "MultiPolygon",
            "GeometryCollection",
        }


def test_an_unreadable_file_is_stored_failed(versions: LayerVersions) -> None:
    row = versions.upload(
        "kelurahan", b'{"type": "FeatureCollection", "feat', "k.geojson", None, WHO
    )
    assert row.state == "failed" and row.report is not None and row.report["error"]
    assert [e.to_state for e in versions.history("kelurahan")][-1] == "failed"


def test_a_layer_without_its_id_column_fails_naming_it(versions: LayerVersions) -> None:
    frame = gpd.read_file(GOOD).rename(columns={"kode": "code"})
    row = versions.upload("kelurahan", frame.to_json().encode(), "k.geojson", None, WHO)
    assert row.state == "failed" and "'kode'" in row.report["error"]  # type: ignore[index]


def kml(frame: gpd.GeoDataFrame, folder: Path) -> bytes:
    """The frame as KML bytes."""
    pyogrio.write_dataframe(frame, folder / "zones.kml", driver="KML")
    return (folder / "zones.kml").read_bytes()


def test_zipped_shapefile_geopackage_kml_and_utm_uploads_are_staged(
    versions: LayerVersions, tmp_path: Path
) -> None:
    frame = gpd.read_file(GOOD)
    (tmp_path / "shp").mkdir()
    uploads = {
        "zones.zip": zipped_shapefile(frame, tmp_path / "shp"),
        "zones.gpkg": geopackage(frame, tmp_path),
        "utm.gpkg": geopackage(frame.to_crs(32748), tmp_path / "shp"),
        "zones.kml": kml(frame, tmp_path),
    }
    for name, data in uploads.items():
        row = versions.upload("kelurahan", data, name, None, WHO)
        assert row.state == "staged", (name, row.report)
        assert not _codes(row.report), (name, row.report)  # type: ignore[arg-type]
        stored = versions.repo.get(row.id, with_zones=True)
        lon, lat = (
            zones_of_version(stored, versions.spec("kelurahan")).geometries[0].centroid.coords[0]
        )  # type: ignore[arg-type]
        assert 100 < lon < 115 and -10 < lat < 0, name  # reprojected to lon/lat


def test_limits_refuse_before_anything_is_stored(versions: LayerVersions) -> None:
    small = LayerVersions(versions.repo, versions.profile, limits=UploadLimits(max_bytes=2048))
    with pytest.raises(UploadTooLargeError):
        small.upload("kelurahan", GOOD.read_bytes(), GOOD.name, None, WHO)
    few = LayerVersions(versions.repo, versions.profile, limits=UploadLimits(max_vertices=50))
    with pytest.raises(InputError, match="vertices"):
        few.upload("kelurahan", GOOD.read_bytes(), GOOD.name, None, WHO)
    with pytest.raises(NotFoundError, match="no layer 'rt'"):
        versions.upload("rt", GOOD.read_bytes(), GOOD.name, None, WHO)
    assert [r.number for r in versions.list_versions("kelurahan")] == [1]


def test_retire_a_staged_version_but_never_the_only_active_one(versions: LayerVersions) -> None:
    row = versions.upload("kelurahan", BROKEN.read_bytes(), BROKEN.name, None, WHO)
    retired = versions.retire(row.id, WHO, layer="kelurahan", note="superseded")
    assert retired.state == "retired"
    with pytest.raises(VersionConflictError, match="retired"):
        versions.retire(row.id, WHO)
    active = versions.repo.active("kelurahan")[0]
    with pytest.raises(VersionConflictError, match="only active"):
        versions.retire(active.id, WHO)
    with pytest.raises(NotFoundError):
        versions.retire(row.id, WHO, layer="kecamatan")  # the id of another layer
    assert versions.repo.get(active.id).state == "active"  # type: ignore[union-attr]
    assert versions.history("kelurahan")[-1].note == "superseded"
