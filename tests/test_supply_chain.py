"""The supply-chain audit (``.ci/audit``, issue 10): pip-audit of the lock in CI, every ignored
advisory with its reason, never a hang."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AUDIT = REPO / ".ci" / "audit"


def _entries(path: Path) -> list[tuple[str, str]]:
    """(id, reason) of each line of an ignore file, comments and blank lines skipped."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            ident, _, reason = text.partition(" ")
            out.append((ident, reason.strip()))
    return out


def test_ci_runs_the_audit_with_timeouts_and_strictly() -> None:
    assert "bash .ci/audit" in (REPO / ".ci" / "run").read_text()
    script = AUDIT.read_text()
    assert "--strict" in script and "timeout " in script and "--timeout" in script
    assert "-r constraints.txt" in script
    assert "pip-audit" in (REPO / "pyproject.toml").read_text()
    assert "\npip-audit==" in (REPO / "constraints.txt").read_text()


def test_every_ignored_advisory_has_a_reason() -> None:
    for ident, reason in _entries(REPO / ".ci" / "audit-ignore.txt"):
        assert reason, f"{ident} needs the reason it does not apply"


def test_an_ignore_without_a_reason_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ignore.txt"
    bad.write_text("# comment\nGHSA-aaaa-bbbb-cccc\n")
    env = {**os.environ, "GEO_ROUTER_AUDIT_IGNORE": str(bad)}
    run = subprocess.run(["bash", str(AUDIT)], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "GHSA-aaaa-bbbb-cccc has no reason" in run.stderr
