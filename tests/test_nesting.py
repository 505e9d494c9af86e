"""Nesting: every child zone lies in exactly one parent zone, checked both ways."""

from __future__ import annotations

import itertools
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_router.city.coords import local_utm
from geo_router.city.layers import make_layer
from geo_router.city.validation import (
    ERROR,
    WARNING,
    Code,
    Thresholds,
    geometry_array,
    nesting_findings,
    validate_layer,
)

X0, Y0, STEP = 107.60, -6.92, 0.01  # about 1.1 km
UTM = local_utm(X0, Y0)


def parents() -> object:
    """Two side-by-side kecamatan, A (west) and B (east)."""
    return make_layer(
        "kecamatan",
        ["A", "B"],
        [
            shapely.box(X0, Y0, X0 + STEP, Y0 + STEP),
            shapely.box(X0 + STEP, Y0, X0 + 2 * STEP, Y0 + STEP),
        ],
    )


def children(boxes: list[tuple[float, float, float, float]]) -> object:
    return make_layer(
        "kelurahan", [f"k{i}" for i in range(len(boxes))], [shapely.box(*b) for b in boxes]
    )


def check(kids: object, share: float = 0.999, min_area: float = 1.0) -> list:
    return nesting_findings(
        kids,
        parents(),
        UTM,
        min_area_m2=min_area,
        nesting_share=share,  # type: ignore[arg-type]
    )


def test_children_inside_one_parent_each_have_no_finding() -> None:
    kids = children(
        [
            (X0, Y0, X0 + STEP / 2, Y0 + STEP),
            (X0 + STEP / 2, Y0, X0 + STEP, Y0 + STEP),
            (X0 + STEP, Y0, X0 + 2 * STEP, Y0 + STEP),
        ]
    )
    assert check(kids) == []


def test_a_child_straddling_two_parents_is_an_error_with_the_shares() -> None:
    kids = children([(X0 + 0.4 * STEP, Y0, X0 + 1.4 * STEP, Y0 + STEP)])  # 60 % in A, 40 % in B
    (finding,) = check(kids)
    assert finding.code == Code.NOT_NESTED and finding.severity == ERROR
    assert finding.ids == ("k0", "A", "B")
    shares = {p["id"]: p["share"] for p in finding.details["parents"]}
    assert shares == {"A": pytest.approx(0.6, abs=1e-4), "B": pytest.approx(0.4, abs=1e-4)}
    assert finding.details["largest_share"] == pytest.approx(0.6, abs=1e-4)
    assert "60.00% in A, 40.00% in B" in finding.message
    # the location is the part outside the main parent, in lon/lat
    where = shapely.geometry.shape(finding.location)
    assert where.equals_exact(shapely.box(X0 + STEP, Y0, X0 + 1.4 * STEP, Y0 + STEP), 1e-9) or (
        where.symmetric_difference(shapely.box(X0 + STEP, Y0, X0 + 1.4 * STEP, Y0 + STEP)).area
        < 1e-12
    )
    assert finding.area_m2 == pytest.approx(0.4 * 1105.4**2, rel=0.01)


def test_a_child_outside_every_parent() -> None:
    kids = children(
        [
            (X0 + 3 * STEP, Y0, X0 + 4 * STEP, Y0 + STEP),  # wholly outside
            (X0 + 1.5 * STEP, Y0, X0 + 2.5 * STEP, Y0 + STEP),  # half outside
        ]
    )
    found = {f.ids[0]: f for f in check(kids)}
    assert found["k0"].code == Code.OUTSIDE_PARENTS and found["k0"].ids == ("k0",)
    assert found["k0"].details["outside_share"] == pytest.approx(1.0)
    assert found["k1"].code == Code.NOT_NESTED
    assert found["k1"].details["outside_share"] == pytest.approx(0.5, abs=1e-4)
    assert "50.00% outside every kecamatan zone" in found["k1"].message


def test_a_small_leftover_is_a_sliver_warning_and_the_share_is_configurable() -> None:
    # 0.05 % of the child (about 600 m2) pokes into B
    kids = children([(X0, Y0, X0 + STEP * 1.0005, Y0 + STEP)])
    (sliver,) = check(kids)
    assert sliver.code == Code.NESTING_SLIVER and sliver.severity == WARNING
    assert 550 < (sliver.area_m2 or 0) < 650
    (strict,) = check(kids, share=0.9999)
    assert strict.code == Code.NOT_NESTED and strict.severity == ERROR
    # below the area threshold a leftover stays a warning, whatever its share
    (small,) = check(kids, share=0.9999, min_area=1000)
    assert small.code == Code.NESTING_SLIVER and small.severity == WARNING


def test_nesting_runs_both_ways_through_the_gate() -> None:
    new_children = gpd.GeoDataFrame(
        {"kode": ["k0", "k1"]},
        geometry=[
            shapely.box(X0, Y0, X0 + 1.2 * STEP, Y0 + STEP),
            shapely.box(X0 + 1.2 * STEP, Y0, X0 + 2 * STEP, Y0 + STEP),
        ],
        crs="EPSG:4326",
    )
    report = validate_layer(new_children, "kode", layer="kelurahan", parent=parents())  # type: ignore[arg-type]
    (finding,) = report.errors()
    assert finding.ids == ("k0", "A", "B") and finding.layer is None and report.blocking
    # the other way: a new parent layer whose edge moved cuts a current child in two
    current_children = make_layer(
        "kelurahan",
        ["k0", "k1"],
        [
            shapely.box(X0, Y0, X0 + STEP, Y0 + STEP),
            shapely.box(X0 + STEP, Y0, X0 + 2 * STEP, Y0 + STEP),
        ],
    )
    new_parents = gpd.GeoDataFrame(
        {"kode": ["A", "B"]},
        geometry=[
            shapely.box(X0, Y0, X0 + 0.5 * STEP, Y0 + STEP),
            shapely.box(X0 + 0.5 * STEP, Y0, X0 + 2 * STEP, Y0 + STEP),
        ],
        crs="EPSG:4326",
    )
    report = validate_layer(new_parents, "kode", layer="kecamatan", children=[current_children])
    (finding,) = report.errors()
    assert finding.code == Code.NOT_NESTED and finding.layer == "kelurahan"
    assert finding.ids == ("k0", "A", "B") or finding.ids == ("k0", "B", "A")
    assert finding.details["child_layer"] == "kelurahan"
    assert finding.details["parent_layer"] == "kecamatan"


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.05, 0.95), min_size=0, max_size=4, unique=True),
    st.lists(st.floats(0.05, 0.95), min_size=0, max_size=4, unique=True),
    st.sampled_from([0, 1]),
)
def test_random_splits_of_a_parent_always_nest(
    xs: list[float], ys: list[float], which: int
) -> None:
    x_cuts = [0.0, *sorted(xs), 1.0]
    y_cuts = [0.0, *sorted(ys), 1.0]
    x_base = X0 + which * STEP
    boxes = [
        (x_base + a * STEP, Y0 + c * STEP, x_base + b * STEP, Y0 + d * STEP)
        for a, b in itertools.pairwise(x_cuts)
        for c, d in itertools.pairwise(y_cuts)
    ]
    found = check(children(boxes))
    assert [f for f in found if f.severity == ERROR] == []
    # a split of the parent, moved across the border by a tenth, never nests
    moved = [
        (a + 0.1 * STEP * (1 - 2 * which), b, c + 0.1 * STEP * (1 - 2 * which), d)
        for a, b, c, d in boxes
    ]
    touching = [box for box in moved if box[0] < X0 + STEP < box[2]]
    if touching:
        assert any(f.code == Code.NOT_NESTED for f in check(children(moved)))


# --------------------------------------------------------------------------- real data


def read(path: Path, id_field: str, name: str) -> object:
    gdf = gpd.read_file(path)
    return gdf, make_layer(name, gdf[id_field], geometry_array(gdf))


def test_bandung_kelurahan_nest_in_their_kecamatan(shared_data: Path) -> None:
    folder = shared_data / "bandung_admin"
    kel, _ = read(folder / "bandung_kelurahan_hdx_bps_2020.geojson", "village_code", "kelurahan")
    kec, kec_layer = read(
        folder / "bandung_kecamatan_dissolved.geojson", "district_code", "kecamatan"
    )
    report = validate_layer(kel, "village_code", layer="kelurahan", parent=kec_layer)
    assert report.n_features == 151 and report.findings == []
    # and each kelurahan's parent by geometry is the one its district_code names
    _, kel_layer = read(
        folder / "bandung_kelurahan_hdx_bps_2020.geojson", "village_code", "kelurahan"
    )
    back = validate_layer(kec, "district_code", layer="kecamatan", children=[kel_layer])
    assert back.n_features == 30 and back.findings == []


def test_nyc_fire_battalions_nest_in_divisions_up_to_slivers(shared_data: Path) -> None:
    folder = shared_data / "nyc_fire_boundaries"
    bat, _ = read(folder / "fire_battalions_2013.geojson", "FireBN", "fire_battalion")
    _, divisions = read(folder / "fire_divisions_2013.geojson", "FireDiv", "fire_division")
    report = validate_layer(bat, "FireBN", layer="fire_battalion", parent=divisions)
    slivers = [f for f in report.findings if f.code == Code.NESTING_SLIVER]
    assert report.errors() == [] and slivers  # quantized TopoJSON edges: sub-m2 slivers
    assert max(f.area_m2 or 0 for f in slivers) <= Thresholds().min_area_m2


def test_nyc_community_districts_that_cross_borough_lines_are_named(shared_data: Path) -> None:
    cd, _ = read(
        shared_data / "nyc_community_districts/community_districts_2020.geojson", "boro_cd", "cd"
    )
    _, boroughs = read(shared_data / "nyc_boroughs/boroughs_2013.geojson", "BoroCode", "borough")
    report = validate_layer(cd, "boro_cd", layer="community_district", parent=boroughs)
    straddling = {f.ids[0]: f for f in report.findings if f.code == Code.NOT_NESTED}
    # Marble Hill (Manhattan borough, Bronx CD 8) and Rikers Island (Bronx, Queens CD 1)
    assert {"208", "401"} <= set(straddling)
    assert straddling["208"].ids[1:3] == ("2", "1")
    assert straddling["401"].ids[1:3] == ("4", "2")
    assert np.isclose(
        sum(p["share"] for p in straddling["401"].details["parents"])
        + straddling["401"].details["outside_share"],
        1.0,
        atol=1e-6,
    )
