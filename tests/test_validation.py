"""The validation gate: report contents, refusal rules and careful repair."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_router.city.validation import (
    ERROR,
    MAX_REPAIR_CHANGE,
    WARNING,
    Code,
    Finding,
    Thresholds,
    ValidationReport,
    ids_as_str,
    repair_layer,
    validate_layer,
)
from geo_router.errors import LayerValidationError, ProfileError

X0, Y0, STEP = 107.60, -6.92, 0.01  # Bandung, about 1.1 km squares


def squares(n: int = 3) -> list[shapely.Polygon]:
    return [shapely.box(X0 + i * STEP, Y0, X0 + (i + 1) * STEP, Y0 + STEP) for i in range(n)]


def frame(geoms: list[object], ids: list[object] | None = None) -> gpd.GeoDataFrame:
    ids = ids if ids is not None else [f"z{i}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"zid": ids}, geometry=geoms, crs="EPSG:4326")


def bowtie() -> shapely.Polygon:
    return shapely.Polygon([(X0, Y0), (X0 + STEP, Y0 + STEP), (X0 + STEP, Y0), (X0, Y0 + STEP)])


def test_clean_coverage_is_accepted() -> None:
    report = validate_layer(frame(squares()), "zid")
    assert isinstance(report, ValidationReport)
    assert not report.refused and report.n_features == 3
    assert report.coverage_valid is True
    assert report.to_dict()["refused"] is False
    assert "3 features: accepted" in report.to_text()


def test_invalid_duplicate_null_and_non_polygon_are_refused() -> None:
    geoms = [*squares(2), bowtie(), shapely.Point(X0, Y0), None, shapely.Polygon()]
    report = validate_layer(frame(geoms, ["a", "a", "b", "c", None, "e"]), "zid")
    assert report.refused
    assert [(f.id, f.row) for f in report.invalid] == [("b", 2)]
    assert report.invalid[0].reason.startswith("Self-intersection")
    assert report.duplicate_ids == ["a"]
    assert report.null_ids == [4]
    assert [(f.id, f.geom_type) for f in report.non_polygon] == [
        ("c", "Point"),
        (None, "missing"),
        ("e", "empty"),
    ]
    text = report.to_text()
    assert "REFUSED" in text and "invalid geometries: 1" in text and "duplicate ids: 1" in text
    json.dumps(report.to_dict())


def test_overlaps_are_measured_and_refused() -> None:
    boxes = squares(2)
    boxes[1] = shapely.box(X0 + STEP * 0.9, Y0, X0 + 2 * STEP, Y0 + STEP)  # 10 % overlap
    report = validate_layer(frame(boxes), "zid")
    assert report.refused
    [overlap] = report.overlaps
    assert (overlap.id_a, overlap.id_b) == ("z0", "z1")
    # 0.001 deg x 0.01 deg at 6.9 S: about 110.5 m x 1105 m
    assert overlap.area_m2 == pytest.approx(110.5 * 1105.4, rel=0.01)


def test_tiny_overlaps_and_touching_are_fine() -> None:
    boxes = squares(2)
    boxes[1] = shapely.box(X0 + STEP - 1e-9, Y0, X0 + 2 * STEP, Y0 + STEP)  # 0.1 mm sliver
    report = validate_layer(frame(boxes), "zid")
    assert report.overlaps == [] and not report.refused


def test_gaps_are_warnings_with_area_and_location() -> None:
    outer = shapely.box(X0, Y0, X0 + 3 * STEP, Y0 + 3 * STEP)
    hole = shapely.box(X0 + STEP, Y0 + STEP, X0 + 2 * STEP, Y0 + 2 * STEP)
    ring = outer.difference(hole)
    # split the ring in two zones that leave the middle square uncovered
    left = ring.intersection(shapely.box(X0, Y0, X0 + 1.5 * STEP, Y0 + 3 * STEP))
    right = ring.intersection(shapely.box(X0 + 1.5 * STEP, Y0, X0 + 3 * STEP, Y0 + 3 * STEP))
    report = validate_layer(frame([left, right]), "zid")
    assert not report.refused
    [gap] = report.gaps
    assert gap.area_m2 == pytest.approx(1105.4 * 1105.4, rel=0.01)
    assert hole.contains(shapely.Point(gap.lon, gap.lat))
    assert "gaps (warning): 1" in report.to_text()


def test_missing_id_field() -> None:
    with pytest.raises(ProfileError, match="'nope' not found") as err:
        validate_layer(frame(squares()), "nope")
    assert "zid" in err.value.detail["columns"]


def test_repair_keeps_area_of_a_degenerate_component() -> None:
    # a MultiPolygon with a collapsed sliver part: like NYC community district 210
    good = squares(1)[0]
    sliver = shapely.Polygon([(X0 + 2 * STEP, Y0), (X0 + 2 * STEP + 1e-6, Y0), (X0 + 2 * STEP, Y0)])
    broken = shapely.MultiPolygon([good, sliver])
    assert not broken.is_valid
    fixed, records = repair_layer(frame([broken, squares(2)[1]]), id_field="zid")
    [record] = records
    assert record.id == "z0" and record.type_before == "MultiPolygon"
    assert record.type_after in ("Polygon", "MultiPolygon")
    assert record.change_ratio <= MAX_REPAIR_CHANGE
    assert record.area_after_m2 == pytest.approx(record.area_before_m2, rel=1e-9)
    assert fixed.geometry.is_valid.all() and fixed.crs == "EPSG:4326"
    assert fixed.geometry.name == "geometry" and list(fixed["zid"]) == ["z0", "z1"]


def test_repair_refuses_bowtie_area_change() -> None:
    with pytest.raises(LayerValidationError, match="cannot be repaired safely") as err:
        repair_layer(frame([bowtie(), squares(2)[1]]), id_field="zid")
    [record] = err.value.detail["report"]["repairs"]
    assert record["id"] == "z0" and record["change_ratio"] > MAX_REPAIR_CHANGE


def test_repair_refuses_collapse_to_nothing() -> None:
    flat = shapely.Polygon([(X0, Y0), (X0 + STEP, Y0), (X0 + 2 * STEP, Y0), (X0, Y0)])
    with pytest.raises(LayerValidationError) as err:
        repair_layer(frame([flat]), id_field="zid")
    assert err.value.detail["report"]["repairs"][0]["type_after"] == "empty"


def test_repair_of_valid_layer_is_a_no_op() -> None:
    gdf = frame(squares())
    fixed, records = repair_layer(gdf)
    assert records == [] and fixed.geometry.geom_equals(gdf.geometry).all()


def test_repair_uses_index_when_no_id_field() -> None:
    gdf = frame([squares(1)[0], bowtie()]).set_index(gpd.pd.Index([10, 11]))
    with pytest.raises(LayerValidationError, match="11:"):
        repair_layer(gdf)


def test_ids_as_str() -> None:
    out = ids_as_str(gpd.pd.Series([104.0, 5.5, None]))
    assert out.tolist() == ["104", "5.5", None]
    assert ids_as_str(gpd.pd.Series([1, 2], dtype="int64")).tolist() == ["1", "2"]
    assert ids_as_str(gpd.pd.Series([1, None], dtype="Int64")).tolist() == ["1", None]
    assert ids_as_str(np.array(["a", 3.0, 7], dtype=object)).tolist() == ["a", "3", "7"]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 24))
def test_grid_coverage_is_clean_until_a_cell_is_removed(nx: int, ny: int, drop: int) -> None:
    cells = [
        shapely.box(X0 + i * STEP, Y0 + j * STEP, X0 + (i + 1) * STEP, Y0 + (j + 1) * STEP)
        for j in range(ny)
        for i in range(nx)
    ]
    assert validate_layer(frame(cells), "zid").gaps == []
    drop = drop % len(cells)
    i, j = drop % nx, drop // nx
    inner = 0 < i < nx - 1 and 0 < j < ny - 1
    report = validate_layer(frame(cells[:drop] + cells[drop + 1 :]), "zid")
    assert len(report.gaps) == (1 if inner else 0)
    assert not report.refused


# --------------------------------------------------------------------------- findings (issue 11)


def by_code(report: ValidationReport) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for finding in report.findings:
        out.setdefault(str(finding.code), []).append(finding)
    return out


def test_every_problem_is_a_finding_with_code_severity_ids_and_location() -> None:
    a, b = squares(2)
    far_bowtie = shapely.affinity.translate(bowtie(), xoff=3 * STEP)
    geoms = [a, a, far_bowtie, shapely.Point(X0, Y0), b, None, shapely.Polygon()]
    report = validate_layer(frame(geoms, ["a", "a", "c", "d", None, "f", "g"]), "zid")
    found = by_code(report)
    assert set(found) >= {
        "duplicate_id",
        "missing_id",
        "invalid_geometry",
        "not_polygon",
        "empty_geometry",
        "overlap",
    }
    assert all(f.severity == ERROR for f in report.findings if f.code != Code.OVERLAP_SLIVER)
    (invalid,) = found["invalid_geometry"]
    assert invalid.ids == ("c",) and invalid.details["reason"].startswith("Self-intersection")
    # the location is the point shapely's reason names, in lon/lat order
    assert invalid.location is not None and invalid.location["type"] == "Point"
    lon, lat = invalid.location["coordinates"]
    assert lon == pytest.approx(X0 + 3.5 * STEP) and lat == pytest.approx(Y0 + STEP / 2)
    (dup,) = found["duplicate_id"]
    assert dup.ids == ("a",) and dup.details["rows"] == [0, 1]
    (missing,) = found["missing_id"]
    assert missing.ids == ("row 4",) and missing.location is not None
    (point,) = found["not_polygon"]
    assert point.ids == ("d",) and point.location == {"type": "Point", "coordinates": [X0, Y0]}
    assert {f.ids for f in found["empty_geometry"]} == {("f",), ("g",)}
    (overlap,) = found["overlap"]
    assert overlap.ids == ("a", "a") and overlap.area_m2 == pytest.approx(1105.4**2, rel=0.01)
    assert shapely.geometry.shape(overlap.location).equals(a)
    assert report.blocking and report.refused


def test_overlap_below_the_threshold_is_a_sliver_warning_with_its_area() -> None:
    left = shapely.box(X0, Y0, X0 + STEP + 1e-6, Y0 + STEP)  # ~0.1 m x 1.1 km = ~120 m2
    right = shapely.box(X0 + STEP, Y0, X0 + 2 * STEP, Y0 + STEP)
    strict = validate_layer(frame([left, right]), "zid")
    assert [str(f.code) for f in strict.findings] == ["overlap"] and strict.blocking
    loose = validate_layer(frame([left, right]), "zid", thresholds=Thresholds(min_area_m2=500))
    (sliver,) = loose.findings
    assert sliver.code == Code.OVERLAP_SLIVER and sliver.severity == WARNING
    assert 100 < (sliver.area_m2 or 0) < 140
    assert not loose.blocking and loose.counts == {
        "errors": 0,
        "warnings": 1,
        "by_code": {"overlap_sliver": 1},
    }


def test_report_dict_has_stable_keys_and_is_json() -> None:
    report = validate_layer(frame([bowtie(), *squares(3)[1:]]), "zid", layer="kelurahan")
    data = json.loads(json.dumps(report.to_dict()))
    assert list(data) == [
        "layer",
        "n_features",
        "blocking",
        "refused",
        "counts",
        "thresholds",
        "coverage_valid",
        "findings",
        "invalid",
        "duplicate_ids",
        "null_ids",
        "non_polygon",
        "overlaps",
        "gaps",
    ]
    assert data["layer"] == "kelurahan" and data["blocking"] is True
    assert data["thresholds"] == {
        "min_area_m2": 1.0,
        "nesting_share": 0.999,
        "max_repair_change": 0.001,
    }
    (finding,) = data["findings"]
    assert list(finding) == [
        "code",
        "severity",
        "message",
        "ids",
        "layer",
        "area_m2",
        "location",
        "details",
    ]
    assert finding["code"] == "invalid_geometry" and finding["ids"] == ["z0"]
    assert "kelurahan: 3 features: REFUSED (1 errors, 0 warnings)" in report.to_text()


def test_thresholds_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="nesting_share"):
        Thresholds(nesting_share=1.5)
    with pytest.raises(ValueError, match="min_area_m2"):
        Thresholds(min_area_m2=-1)


def test_repair_threshold_is_configurable_and_the_refusal_names_the_file() -> None:
    # a hole half outside its shell: the repair changes the area by about 2 %
    shell = squares(1)[0]
    hole = shapely.box(X0 + 0.004, Y0 - 0.001, X0 + 0.006, Y0 + 0.001)
    broken = shapely.Polygon(shell.exterior.coords, [hole.exterior.coords])
    assert not broken.is_valid
    gdf = frame([broken, squares(2)[1]])
    with pytest.raises(LayerValidationError, match=r"^zones/new\.geojson: 1 feature") as err:
        repair_layer(gdf, id_field="zid", source="zones/new.geojson")
    assert err.value.detail["path"] == "zones/new.geojson"
    assert "0.10% area change" in err.value.message and " m2 " in err.value.message
    fixed, [record] = repair_layer(gdf, id_field="zid", max_change=0.05)
    assert 0.01 < record.change_ratio < 0.05
    assert record.area_after_m2 > record.area_before_m2 > 0
    assert record.acceptable_within(0.05) and not record.acceptable
    assert fixed.geometry.is_valid.all()


def test_thresholds_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Thresholds.from_settings() == Thresholds()
    monkeypatch.setenv("GEO_ROUTER_VALIDATION_MIN_AREA_M2", "25")
    monkeypatch.setenv("GEO_ROUTER_VALIDATION_NESTING_SHARE", "0.99")
    monkeypatch.setenv("GEO_ROUTER_VALIDATION_MAX_REPAIR_CHANGE", "0.01")
    from geo_router.settings import validation_settings

    validation_settings.cache_clear()
    assert Thresholds.from_settings() == Thresholds(25, 0.99, 0.01)
