"""benchmarks/soak.py in short: lookups and intake on a 10,000-zone layer, no error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"


@pytest.mark.slow
def test_a_short_soak_has_no_error() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--duration", "5", "--lookups", "4", "--intake", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "10,000 zones" in done.stdout and "PASS" in done.stdout
    assert "0 errors; 0 tracebacks" in done.stdout
