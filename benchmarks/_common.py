"""Helpers shared by the benchmarks: the real data folder, timing in forked children, tables.

Each timed run happens in a forked child process, so its peak memory can be read on its own:
``peak MB`` is the child's ``ru_maxrss`` at the end minus its resident size at the start (it
counts C/GEOS allocations, which tracemalloc would miss). The parent keeps whatever was built
before (indexes, points); the child only pays for the work being measured.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
MEMORY_NOTE = "peak MB = ru_maxrss delta of a forked child running the method once"


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository, or ``GEO_ROUTER_SHARED_DATA``."""
    return Path(os.environ.get("GEO_ROUTER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def require_shared_data(*relative: str) -> Path:
    """The shared data folder; print why and exit 0 when it (or a needed file) is absent."""
    root = shared_data_dir()
    missing = [name for name in relative if not (root / name).exists()]
    if not root.is_dir() or missing:
        print(
            f"real data not found at {root} (missing: {', '.join(missing) or 'the folder'}); "
            "set GEO_ROUTER_SHARED_DATA to the shared data folder. Nothing to benchmark."
        )
        sys.exit(0)
    return root


def uniform_points(
    bounds: tuple[float, float, float, float] | np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform random (lon, lat) in a bounding box, reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def _resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(fn: Callable[[], Any], conn: Any) -> None:
    try:
        start_mb = _resident_mb()
        cpu_start = _cpu_seconds()
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start_mb
        conn.send((seconds, cpu, peak_mb, result, None))
    except BaseException:  # report any failure to the parent instead of hanging it
        conn.send((float("nan"), float("nan"), float("nan"), None, traceback.format_exc()))
    finally:
        conn.close()


@dataclass
class Measurement:
    """Best wall time (and the CPU time of that run), largest peak memory, last result.

    CPU seconds help read numbers taken on a busy machine: wall time then includes waiting.
    """

    seconds: float
    peak_mb: float
    result: Any
    cpu_seconds: float = float("nan")


def measure(fn: Callable[[], Any], repeats: int = 3) -> Measurement:
    """Run ``fn`` ``repeats`` times, each in a forked child; best seconds, max peak memory.

    ``fn``'s return value travels back by pickle: keep it to arrays the caller needs.
    """
    context = multiprocessing.get_context("fork")
    best, best_cpu, peak, result = float("inf"), float("nan"), 0.0, None
    for _ in range(repeats):
        parent, child = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(fn, child))
        process.start()
        child.close()
        seconds, cpu, peak_mb, result, error = parent.recv()
        process.join()
        if error:
            raise RuntimeError(f"benchmark run failed:\n{error}")
        if seconds < best:
            best, best_cpu = seconds, cpu
        peak = max(peak, peak_mb)
    return Measurement(best, peak, result, best_cpu)


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """Print a table with rich when it is there, else as aligned plain text."""
    cells = [[_cell(value) for value in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency, plain text is a fallback
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for row in cells:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        return
    table = Table(*headers)
    for row in cells:
        table.add_row(*row)
    Console(width=160).print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(name: str, value: float, target: float, cpu_value: float | None = None) -> str:
    """``PASS``/``FAIL`` line for a wall-time ratio target (with the CPU-time ratio beside)."""
    status = "PASS" if value >= target else "FAIL"
    cpu = f"; CPU-time ratio {cpu_value:.2f}x" if cpu_value is not None else ""
    return f"{status}: {name} = {value:.2f}x (target >= {target:g}x){cpu}"
