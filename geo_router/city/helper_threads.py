"""Lazily started helper threads for overlapping bulk work (numpy and pyproj drop the GIL).

One single-thread pool per purpose, never shared: a task on one pool may wait on another
(bulk routing ranks facilities on its helper while the facility index splits geodesics on
its own), and a shared single thread would deadlock.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["CPUS", "helper_thread"]

#: Cores seen at import; overlapping work is pointless on one core.
CPUS = os.cpu_count() or 1

_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def helper_thread(purpose: str) -> ThreadPoolExecutor:
    """The single helper thread for ``purpose``, started on first use."""
    with _LOCK:
        pool = _POOLS.get(purpose)
        if pool is None:
            pool = ThreadPoolExecutor(1, thread_name_prefix=f"geo-router-{purpose}")
            _POOLS[purpose] = pool
        return pool
