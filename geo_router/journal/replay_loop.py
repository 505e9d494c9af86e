"""The background thread that replays the journal into the store until it is empty."""

from __future__ import annotations

import logging
import threading

from geo_router.journal.journal import Journal, ReplayResult

__all__ = ["ReplayLoop"]

log = logging.getLogger(__name__)


class ReplayLoop:
    """Replays ``journal`` at once (a restart with a non-empty journal), then every interval.

    Each round that finds pending records tries the store (through the replayers); a round
    that meets ``StoreUnavailableError`` simply waits for the next one. :meth:`wake` starts
    a round early (after an append, so a short outage is drained quickly).

    Parameters
    ----------
    journal
        The journal, its replayers registered.
    interval_s
        Seconds between rounds (``GEO_ROUTER_JOURNAL_REPLAY_INTERVAL_S``).
    """

    def __init__(self, journal: Journal, interval_s: float) -> None:
        self.journal = journal
        self.interval_s = interval_s
        self.last: ReplayResult | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="geo-router-journal", daemon=True)

    def start(self) -> ReplayLoop:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def wake(self) -> None:
        """Run the next round now."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current round (waits up to ``timeout_s``)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def run_once(self) -> ReplayResult | None:
        """One round: replay when something is pending (None when nothing was)."""
        if not self.journal.has_pending():
            return None
        self.last = self.journal.replay()
        return self.last

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the loop must outlive any one failure; the next round retries
                log.exception("journal replay round failed")
            self._wake.wait(self.interval_s)
            self._wake.clear()
