"""The operators' outage drill (benchmarks/rehearse_outage.py), short, as CI runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.postgres
@pytest.mark.slow
def test_the_short_outage_drill_passes() -> None:
    url = os.environ.get("GEO_ROUTER_TEST_DATABASE_URL")
    if not url:
        pytest.skip("the drill needs GEO_ROUTER_TEST_DATABASE_URL (set by .ci/run)")
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "rehearse_outage.py"), "--short"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("PASS")
    assert "stored copies per answered id: {1: " in done.stdout
