"""The replay thread: drains a restart's leftovers at once, retries until the store is back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from geo_router.errors import StoreUnavailableError
from geo_router.intake.secrets import Secrets
from geo_router.journal import Journal, ReplayLoop


def test_replays_at_start_and_again_once_the_store_is_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.bin", Secrets.generate(), preallocate_bytes=64 * 1024)
    journal.append("report", {"n": 1})  # left by a worker that died during an outage
    stored: list[int] = []
    attempts = threading.Semaphore(0)
    down = threading.Event()
    down.set()

    def replayer(payload: dict[str, Any]) -> None:
        attempts.release()
        if down.is_set():
            raise StoreUnavailableError("down")
        stored.append(payload["n"])

    journal.register("report", replayer)
    loop = ReplayLoop(journal, interval_s=0.05).start()
    try:
        assert attempts.acquire(timeout=10)  # tried at start, without waiting an interval
        assert stored == [] and journal.has_pending()
        down.clear()
        loop.wake()
        for _ in range(200):
            if loop.last is not None and loop.last.replayed == 1:
                break
            attempts.acquire(timeout=0.05)
        assert loop.last is not None and loop.last.replayed == 1
        assert stored == [1] and not journal.has_pending()
    finally:
        loop.stop()
    assert loop.run_once() is None  # nothing pending: no replay at all
