"""The layer versions repository on both backends: numbering, states, history, seeding race."""

from __future__ import annotations

from typing import Any

from geo_router.store.layer_versions_repo import LayerVersionsRepo


def _create(repo: LayerVersionsRepo, **given: Any) -> Any:
    values: dict[str, Any] = {
        "layer": "kelurahan",
        "state": "staged",
        "checksum": "abc",
        "author": "planner-1",
        "note": "split",
    }
    return repo.create(**{**values, **given})


def test_versions_are_numbered_per_layer_and_listed_newest_first(migrated_engine: Any) -> None:
    repo = LayerVersionsRepo(migrated_engine)
    first = _create(repo, state="active", geojson='{"features": []}')
    second = _create(repo, checksum="def")
    other = _create(repo, layer="kecamatan")
    assert (first.number, second.number, other.number) == (1, 2, 1)
    assert first.id != second.id and first.id.startswith("lv_")
    assert [r.number for r in repo.of_layer("kelurahan")] == [2, 1]
    assert repo.of_layer("kelurahan")[0].geojson is None  # listing never reads the zones
    assert repo.get(first.id, with_zones=True).geojson == '{"features": []}'  # type: ignore[union-attr]
    assert [r.id for r in repo.active("kelurahan")] == [first.id]
    assert repo.checksums("kelurahan") == {"abc", "def"}
    assert repo.get("lv_missing") is None


def test_state_changes_are_checked_and_recorded(migrated_engine: Any) -> None:
    repo = LayerVersionsRepo(migrated_engine)
    row = _create(repo, state="validating")
    repo.finish(
        row.id,
        state="staged",
        actor="gate",
        geojson="{}",
        feature_count=3,
        report={"blocking": False},
    )
    assert repo.change_state(row.id, expected=("active",), to="retired", actor="a", note=None) == (
        "staged"
    )
    assert repo.get(row.id).state == "staged"  # type: ignore[union-attr]  # refused: not active
    before = repo.change_state(row.id, expected=("staged",), to="retired", actor="p", note="old")
    assert before == "staged"
    stored = repo.get(row.id)
    assert stored is not None and stored.state == "retired" and stored.feature_count == 3
    assert stored.report == {"blocking": False}
    events = [
        (e.number, e.actor, e.from_state, e.to_state, e.note) for e in repo.history("kelurahan")
    ]
    assert events == [
        (1, "planner-1", None, "validating", "split"),
        (1, "gate", "validating", "staged", None),
        (1, "p", "staged", "retired", "old"),
    ]
    assert (
        repo.change_state("lv_missing", expected=("staged",), to="retired", actor="p", note=None)
        is None
    )


def test_create_if_new_stores_a_checksum_once(migrated_engine: Any) -> None:
    repo = LayerVersionsRepo(migrated_engine)
    values: dict[str, Any] = {
        "layer": "kelurahan",
        "state_if_first": "active",
        "state": "staged",
        "author": "city-profile",
        "note": None,
    }
    first = repo.create_if_new(checksum="a1", **values)
    assert first is not None and first.state == "active"
    assert repo.create_if_new(checksum="a1", **values) is None
    later = repo.create_if_new(checksum="b2", **values)
    assert later is not None and later.state == "staged" and later.number == 2
