"""The supervisor of ``geo-router serve``: reloads drop no emergency, workers die with it
(issue 10, Medium 6 and the Low item on orphan workers)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from geo_router.cli import supervisor

EMERGENCY = {
    "category": "fire",
    "channel": "call",
    "description": "api",
    "location": {"lon": 107.6, "lat": -6.9},
}


class _Stream:
    """Emergency reports posted one after another, each on a new connection, until stopped."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status: int | str = httpx.post(
                    self.base + "/v1/reports", json=EMERGENCY, timeout=30
                ).status_code
            except httpx.TransportError as exc:
                status = type(exc).__name__
            self.answers.append(status)

    def __enter__(self) -> _Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def failures(self) -> list[int | str]:
        return [a for a in self.answers if a != 201]


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_sighup_reload_drops_no_emergency(serve: Any, workers: str) -> None:
    served = serve("--workers", workers)
    served.wait_ready()
    before = set(_children(served.process.pid))
    with _Stream(served.base) as stream:
        time.sleep(1.0)
        os.kill(served.process.pid, signal.SIGHUP)
        served.wait_for("reload done")
        time.sleep(1.0)
    assert served.process.poll() is None, served.output()  # SIGHUP no longer kills it
    assert len(stream.answers) > 10
    assert stream.failures() == [], served.output()[-3000:]
    after = set(_children(served.process.pid))
    assert len(before - after) == int(workers)  # every worker replaced (not the tracker)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_workers_exit_when_the_supervisor_is_killed(serve: Any) -> None:
    served = serve("--workers", "2")
    served.wait_ready()
    workers = [pid for pid in _children(served.process.pid) if _alive(pid)]
    assert workers
    os.kill(served.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "orphan workers still running"
    with pytest.raises(httpx.TransportError):
        httpx.get(served.base + "/livez", timeout=2)


def test_outside_a_supervised_worker_nothing_is_tied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(supervisor.SUPERVISOR_PID_ENV, raising=False)
    assert supervisor.exit_with_parent() is False
    monkeypatch.setenv(supervisor.SUPERVISOR_PID_ENV, str(os.getpid()))  # the supervisor itself
    assert supervisor.exit_with_parent() is False


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        now = supervisor.raise_open_files_limit()
        assert now >= soft
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
