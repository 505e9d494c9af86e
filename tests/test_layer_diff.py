"""What changes between two versions of a layer: added, removed, reshaped, renamed."""

from __future__ import annotations

import json

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_router.city.layer_diff import diff_layers

X0, Y0, STEP = 107.60, -6.92, 0.01
KM2 = 1105.4**2  # one STEP x STEP cell near Bandung, m2


def cell(i: float, width: float = 1.0) -> shapely.Polygon:
    return shapely.box(X0 + i * STEP, Y0, X0 + (i + width) * STEP, Y0 + STEP)


def test_identical_layers_change_nothing() -> None:
    diff = diff_layers(["a", "b"], [cell(0), cell(1)], ["b", "a"], [cell(1), cell(0)])
    assert not diff.changed and diff.unchanged == 2
    assert diff.to_dict()["counts"] == {
        "added": 0,
        "removed": 0,
        "reshaped": 0,
        "renamed": 0,
        "unchanged": 2,
    }


def test_a_split_reshapes_one_zone_and_adds_another() -> None:
    diff = diff_layers(
        ["a", "b"],
        [cell(0), cell(1)],
        ["a", "b", "c"],
        [cell(0), cell(1, 0.6), cell(1.6, 0.4)],
        old_names=["A", "B"],
        new_names=["A", "B", "C"],
        layer="kelurahan",
    )
    [added] = diff.added
    assert added.id == "c" and added.name == "C"
    assert added.area_m2 == pytest.approx(0.4 * KM2, rel=0.01)
    [reshaped] = diff.reshaped
    assert reshaped.id == "b" and reshaped.gained_m2 == pytest.approx(0, abs=1e-6)
    assert reshaped.lost_m2 == pytest.approx(0.4 * KM2, rel=0.01)
    assert reshaped.lost_pct == pytest.approx(40, abs=0.1)
    assert diff.removed == [] and diff.renamed == [] and diff.unchanged == 1
    data = json.loads(json.dumps(diff.to_dict()))
    assert data["reshaped"][0]["lost_pct"] == pytest.approx(40, abs=0.1)
    text = diff.to_text()
    assert "what changes in kelurahan: 1 added, 0 removed, 1 reshaped" in text
    assert "~ b: +0 m2 (0.00%), -" in text
    kinds = [f["properties"]["change"] for f in diff.changed_areas()["features"]]
    assert kinds == ["added", "lost"]  # the empty "gained" shape is left out


def test_removed_and_renamed_zones() -> None:
    diff = diff_layers(
        ["a", "b"],
        [cell(0), cell(1)],
        ["a"],
        [cell(0)],
        old_names=["A", "B"],
        new_names=["Alpha"],
    )
    assert [z.id for z in diff.removed] == ["b"]
    [renamed] = diff.renamed
    assert (renamed.id, renamed.old_name, renamed.new_name) == ("a", "A", "Alpha")
    assert diff.unchanged == 0


def test_an_invalid_new_zone_does_not_break_the_diff() -> None:
    bowtie = shapely.Polygon(
        [(X0, Y0), (X0 + STEP, Y0 + STEP), (X0 + STEP, Y0), (X0, Y0 + STEP), (X0, Y0)]
    )
    diff = diff_layers(["a"], [cell(0)], ["a"], [bowtie])
    [reshaped] = diff.reshaped
    assert reshaped.lost_m2 == pytest.approx(0.5 * KM2, rel=0.01)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.05, 0.95))
def test_gained_and_lost_balance_when_a_border_moves(share: float) -> None:
    diff = diff_layers(
        ["a", "b"],
        [cell(0), cell(1)],
        ["a", "b"],
        [cell(0, 1 + share), cell(1 + share, 1 - share)],
    )
    by_id = {z.id: z for z in diff.reshaped}
    assert by_id["a"].gained_m2 == pytest.approx(by_id["b"].lost_m2, rel=1e-6)
    assert by_id["a"].gained_m2 == pytest.approx(share * KM2, rel=0.01)
