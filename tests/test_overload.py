"""benchmarks/overload.py in short: above capacity, every emergency answered, no 500."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "overload.py"


@pytest.mark.slow
def test_a_short_overload_answers_every_emergency() -> None:
    args = ["--duration", "4", "--probe", "2", "--factor", "1.5", "--connections", "1000"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "emergency_intake" in done.stdout and "PASS" in done.stdout
