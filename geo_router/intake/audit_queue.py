"""Audit records written off the caller's thread, in batches, within a bounded queue.

For records made where waiting on the database is not allowed: an API-key refusal is decided
on the event loop, and a flood of refusals must neither stall other requests nor turn into as
many write transactions. One daemon thread takes what is queued and hands it on in batches
(one transaction each). A full queue drops records but counts them: the next batch carries a
summary record per action with ``detail['suppressed']``, so a flood is visible in the chain.
Records still queued when the process dies are lost; :meth:`AuditQueue.close` (at shutdown)
writes them first.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from geo_router.store.audit_repo import AuditRecord

__all__ = ["AuditQueue"]

log = logging.getLogger(__name__)

#: Records one write transaction takes at most.
BATCH = 500
#: Records waiting at most; more are counted, not kept.
CAPACITY = 10_000


class AuditQueue:
    """A bounded queue in front of ``sink`` (which never raises: it falls back itself).

    Parameters
    ----------
    sink
        Writes a batch of records, in order (``AuditService.store_batch``).
    summarize
        Makes the summary record of ``n`` dropped records like ``example``.
    """

    def __init__(
        self,
        sink: Callable[[Sequence[AuditRecord]], None],
        summarize: Callable[[AuditRecord, int], AuditRecord],
        *,
        capacity: int = CAPACITY,
    ) -> None:
        self._sink = sink
        self._summarize = summarize
        self._queue: queue.Queue[AuditRecord | None] = queue.Queue(capacity)
        self._dropped: Counter[tuple[str, str]] = Counter()
        self._examples: dict[tuple[str, str], AuditRecord] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._flushes: list[threading.Event] = []  # one per flush marker queued, in order

    def submit(self, record: AuditRecord) -> None:
        """Queue ``record``; never blocks (a full queue counts it as dropped)."""
        self._start()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            kind = (record.action, record.purpose)
            with self._lock:
                self._dropped[kind] += 1
                self._examples.setdefault(kind, record)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        with self._lock:
            self._flushes.append(done)
        try:  # the flush marker: FIFO, so what came before it is written when it is reached
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            with self._lock:
                self._flushes.remove(done)  # it has no marker to be released by
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (at shutdown)."""
        self.flush(timeout)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="audit-queue", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            batch: list[AuditRecord] = []
            markers = 0
            item = self._queue.get()
            while True:
                if item is None:
                    markers += 1
                else:
                    batch.append(item)
                if len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            batch.extend(self._summaries())
            if batch:
                try:
                    self._sink(batch)
                except Exception:  # the sink falls back itself; this is a bug, keep running
                    log.exception("audit queue could not write %d records", len(batch))
            self._release_flushes(markers)

    def _summaries(self) -> list[AuditRecord]:
        with self._lock:
            dropped, self._dropped = self._dropped, Counter()
            examples, self._examples = self._examples, {}
        if dropped:
            log.warning("audit queue full: %d records summarized", sum(dropped.values()))
        return [self._summarize(examples[kind], n) for kind, n in dropped.items()]

    def _release_flushes(self, markers: int) -> None:
        with self._lock:
            flushes, self._flushes = self._flushes[:markers], self._flushes[markers:]
        for done in flushes:
            done.set()
