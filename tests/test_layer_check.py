"""A new layer version checked against the city's current layers: gate plus what changes."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest

from geo_router.city.layer_check import check_layer, current_layers
from geo_router.city.profile import load_profile
from geo_router.city.validation import Code
from zones_data import KELURAHAN_SPLIT, KELURAHAN_SPLIT_BROKEN
from zones_data.generate_examples import chord_split


@pytest.fixture(scope="module")
def city(demo_profile_path: Path):  # type: ignore[no-untyped-def]
    profile = load_profile(demo_profile_path)
    return profile, current_layers(profile, "kelurahan"), current_layers(profile, "kecamatan")


def check_kelurahan(city, gdf: gpd.GeoDataFrame):  # type: ignore[no-untyped-def]
    _, kel, _ = city
    return check_layer(
        gdf,
        "kode",
        layer="kelurahan",
        current=kel.current,
        parent=kel.parent,
        children=kel.children,
        name_field="nama",
        current_names=kel.current.names,
    )


def test_current_layers_follow_the_profile(city) -> None:  # type: ignore[no-untyped-def]
    _, kel, kec = city
    assert kel.current.name == "kelurahan" and kel.parent is not None
    assert kel.parent.name == "kecamatan" and kel.children == []
    assert kec.parent is None and [c.name for c in kec.children] == ["kelurahan"]


def test_the_staged_split_passes_and_says_what_changes(city) -> None:  # type: ignore[no-untyped-def]
    result = check_kelurahan(city, gpd.read_file(KELURAHAN_SPLIT))
    assert not result.blocking, result.to_text()
    assert result.report.findings == []
    changes = result.changes
    assert changes is not None
    assert [len(changes.added), len(changes.removed), len(changes.reshaped)] == [1, 0, 1]
    assert changes.unchanged == 150
    (added,) = changes.added
    (reshaped,) = changes.reshaped
    assert reshaped.lost_m2 == pytest.approx(added.area_m2, rel=1e-6)
    assert added.name is not None and added.name.endswith(" Baru")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["blocking"] is False and data["changes"]["counts"]["added"] == 1


def test_the_broken_split_has_an_overlap_and_a_nesting_error(city) -> None:  # type: ignore[no-untyped-def]
    result = check_kelurahan(city, gpd.read_file(KELURAHAN_SPLIT_BROKEN))
    assert result.blocking
    codes = {str(f.code) for f in result.report.errors()}
    assert codes == {"overlap", "not_nested"}
    (nesting,) = [f for f in result.report.errors() if f.code == Code.NOT_NESTED]
    (overlap,) = [f for f in result.report.errors() if f.code == Code.OVERLAP]
    assert nesting.ids[0] in overlap.ids  # the grown kelurahan
    assert len(nesting.details["parents"]) == 2
    assert nesting.location is not None and nesting.location["type"] in ("Polygon", "MultiPolygon")


def test_a_missing_kelurahan_leaves_the_city_uncovered(city) -> None:  # type: ignore[no-untyped-def]
    gdf = gpd.read_file(city[1].current.source).iloc[1:]
    result = check_kelurahan(city, gdf)
    (uncovered,) = [f for f in result.report.findings if f.code == Code.UNCOVERED]
    assert uncovered.area_m2 == pytest.approx(result.changes.removed[0].area_m2, rel=1e-6)
    assert "the current kelurahan layer" in uncovered.message


def test_a_new_kecamatan_layer_that_cuts_kelurahan_is_refused(city) -> None:  # type: ignore[no-untyped-def]
    _, _, kec = city
    gdf = gpd.read_file(kec.current.source)
    first, second = chord_split(gdf.geometry.iloc[0])
    gdf.loc[gdf.index[0], "geometry"] = first
    extra = gdf.iloc[[0]].copy()
    extra["kode"] = "999999"
    extra.loc[extra.index[0], "geometry"] = second
    gdf = gpd.GeoDataFrame(gpd.pd.concat([gdf, extra], ignore_index=True), crs=gdf.crs)
    result = check_layer(gdf, "kode", layer="kecamatan", current=kec.current, children=kec.children)
    cut = [f for f in result.report.errors() if f.code == Code.NOT_NESTED]
    assert cut and all(f.layer == "kelurahan" for f in cut)
    assert all("999999" in f.ids for f in cut)
    assert result.changes is not None and [z.id for z in result.changes.added] == ["999999"]
