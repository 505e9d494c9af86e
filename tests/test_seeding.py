"""Seeding: the profile's files become version 1 once; a changed file becomes a staged version."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from geo_router.city.profile import load_profile
from geo_router.planning.seeding import PROFILE_AUTHOR, seed_from_profile
from geo_router.planning.versions import LayerVersions
from geo_router.store.layer_versions_repo import LayerVersionsRepo
from geo_router.store.schema import layer_versions, utcnow
from tests.conftest import copy_of_demo_city

EXAMPLES = Path(__file__).parents[1] / "zones_data" / "examples"


def test_first_start_seeds_version_1_and_later_starts_are_idempotent(
    migrated_engine: Any, demo_profile_path: Path
) -> None:
    versions = LayerVersions(LayerVersionsRepo(migrated_engine), load_profile(demo_profile_path))
    first = seed_from_profile(versions)
    assert set(first.values()) == {"seeded"} and len(first) == 4
    again = seed_from_profile(versions)
    assert set(again.values()) == {"unchanged"}
    for layer in first:
        rows = versions.list_versions(layer)
        assert [(r.number, r.state, r.author) for r in rows] == [(1, "active", PROFILE_AUTHOR)]
        assert rows[0].feature_count and rows[0].feature_count > 0


def test_a_profile_file_changed_on_disk_becomes_a_staged_version(
    migrated_engine: Any, tmp_path: Path
) -> None:
    profile_path = copy_of_demo_city(tmp_path / "city")
    repo = LayerVersionsRepo(migrated_engine)
    seed_from_profile(LayerVersions(repo, load_profile(profile_path)))
    shutil.copy(
        EXAMPLES / "kelurahan_split_broken.geojson", tmp_path / "city" / "kelurahan.geojson"
    )
    versions = LayerVersions(repo, load_profile(profile_path))
    outcome = seed_from_profile(versions)
    assert outcome["kelurahan"] == "staged"
    assert {v for k, v in outcome.items() if k != "kelurahan"} == {"unchanged"}
    newest, first = versions.list_versions("kelurahan")
    assert (first.state, newest.state, newest.number) == ("active", "staged", 2)  # no silent swap
    assert newest.note is not None and "changed on disk" in newest.note
    assert newest.report is not None and newest.report["blocking"]  # the gate ran
    assert set(seed_from_profile(versions).values()) == {"unchanged"}


def test_an_upload_left_validating_by_a_dead_process_is_failed_at_start(
    migrated_engine: Any, demo_profile_path: Path
) -> None:
    versions = LayerVersions(LayerVersionsRepo(migrated_engine), load_profile(demo_profile_path))
    seed_from_profile(versions)
    values: dict[str, Any] = {"state": "validating", "author": "p", "note": None}
    old = versions.repo.create(layer="kelurahan", checksum="old", **values)
    young = versions.repo.create(layer="kelurahan", checksum="young", **values)
    with migrated_engine.begin() as conn:  # the first one was stored two hours ago
        conn.execute(
            layer_versions.update()
            .where(layer_versions.c.id == old.id)
            .values(created_at=utcnow() - timedelta(hours=2))
        )
    seed_from_profile(versions)
    failed = versions.get_version(old.id)
    assert failed.state == "failed" and "interrupted" in failed.report["error"]  # type: ignore[index]
    assert versions.get_version(young.id).state == "validating"  # may be running elsewhere
    assert versions.history("kelurahan")[-1].to_state == "failed"
