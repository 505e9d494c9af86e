"""``benchmarks/kill_durability.py`` in short (issue 10): a few kill -9 of the server per backend
during a stream of mixed intake; every acknowledged report present once and intact, in-doubt
requests re-sent with their key made exactly one report, the database sound. The full run
(100 kills per backend) is the script's default; see benchmarks/README.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geo_router.store import Store

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import kill_durability  # noqa: E402

KILLS = 5


def test_the_verifier_catches_lost_duplicated_and_altered_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    Store.from_url(url).close()
    body = {"category": "fire", "description": "lost", "location": {"lon": 107.6, "lat": -6.9}}
    ledger = kill_durability.Ledger()
    ledger.add(kill_durability.Sent(body, key=None, emergency=True, status=201, report_id="r1"))
    result = kill_durability.Result("sqlite")
    kill_durability._verify(url, ledger, result)
    assert result.integrity == "ok"
    assert result.failures == ["report r1 stored 0 times"]


@pytest.mark.slow
def test_kill_minus_9_during_intake_loses_nothing(tmp_path: Path) -> None:
    backends = "sqlite,postgres" if os.environ.get("GEO_ROUTER_TEST_DATABASE_URL") else "sqlite"
    out = tmp_path / "kills.json"
    command = [sys.executable, str(BENCHMARKS / "kill_durability.py"), "--kills", str(KILLS)]
    command += ["--backends", backends, "--max-delay", "0.8", "--json", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [r["backend"] for r in results] == backends.split(",")
    for r in results:
        assert r["kills"] == KILLS and r["failures"] == []
        assert r["acknowledged"] > 0 and r["acknowledged_emergencies"] > 0
        assert r["integrity"] == "ok" and r["errors_5xx"] == 0
        assert r["resent_made_one"] == r["in_doubt_keyed"]
