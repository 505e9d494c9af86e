"""``geo-router layers upload/list/show`` on the embedded SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

EXAMPLES = Path(__file__).parents[1] / "zones_data" / "examples"


def _invoke(tmp_path: Path, *args: str) -> Any:
    from geo_router.cli import app

    env = {"GEO_ROUTER_DATA_DIR": str(tmp_path), "GEO_ROUTER_DATABASE_URL": "", "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


def test_upload_list_and_show(tmp_path: Path) -> None:
    broken = EXAMPLES / "kelurahan_split_broken.geojson"
    done = _invoke(tmp_path, "layers", "upload", "kelurahan", str(broken), "--note", "split")
    assert done.exit_code == 0, done.output
    version = json.loads(done.stdout)
    assert (version["state"], version["number"], version["note"]) == ("staged", 2, "split")
    assert version["report"]["blocking"] and "cannot be activated" in done.stderr
    listed = _invoke(tmp_path, "layers", "list", "kelurahan")
    assert listed.exit_code == 0, listed.output
    assert version["id"] in listed.stdout and "active" in listed.stdout  # version 1, seeded
    shown = _invoke(tmp_path, "layers", "show", version["id"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["report"] == version["report"]
    tail = _invoke(tmp_path, "audit", "tail", "-n", "5")
    records = [json.loads(line) for line in tail.stdout.splitlines() if line.startswith("{")]
    assert [(r["action"], r["detail"]["event"]) for r in records] == [("layer_change", "upload")]


def test_unreadable_exits_1_and_refusals_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.geojson"
    junk.write_text("not json")
    failed = _invoke(tmp_path, "layers", "upload", "kelurahan", str(junk))
    assert failed.exit_code == 1 and json.loads(failed.stdout)["state"] == "failed"
    csv = tmp_path / "zones.csv"
    csv.write_text("a,b\n")
    refused = _invoke(tmp_path, "layers", "upload", "kelurahan", str(csv))
    assert refused.exit_code == 2 and ".csv" in refused.stderr
    assert _invoke(tmp_path, "layers", "show", "lv_nope").exit_code == 2
