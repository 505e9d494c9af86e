"""Overload: an open-loop generator well above capacity; emergencies must all be answered.

Serves the demo city with ``geo-router serve`` (one worker, pinned to CPU 0 when ``taskset``
exists; the generator runs on the other CPUs), measures the capacity for the request mix
with a short closed-loop run, then sends requests at a fixed rate (``--factor`` times that
capacity, or ``--rate``) for ``--duration`` seconds, open loop: each request is sent at its
scheduled time whatever happened to the ones before (on a new connection when every open
one is busy, up to ``--connections``), and its latency counts from that time.

The mix: 5 % emergencies (half ``GET /v1/route?category=fire``, half ``POST /v1/reports`` of
an emergency category), the rest 70 % routing, 20 % intake, 5 % other (report lists).
Passes when every emergency was answered 2xx, no answer was a 500 (or any 5xx but a 503
shed), every shed answer (429/503) carried ``Retry-After``, and nothing was left unanswered
5 s after the load stopped. Prints latencies per class.

Run from the repository root::

    python benchmarks/overload.py                   # 20 s at 4x capacity
    python benchmarks/overload.py --duration 5 --factor 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table
from _load import (
    Connection,
    Tally,
    get,
    post_json,
    report,
    serve_city,
    stop_servers,
    wait_ready,
)

#: (class, share of all requests).
MIX = (
    ("emergency_route", 0.025),
    ("emergency_intake", 0.025),
    ("route", 0.70),
    ("intake", 0.20),
    ("other", 0.05),
)
EMERGENCY_CLASSES = ("emergency_route", "emergency_intake")
LINGER_S = 5.0  # nothing may be unanswered this long after the load stops
STALE_S = 4.0  # an idle connection older than this may be closed by the server meanwhile


def _requests(points: np.ndarray) -> dict[str, list[bytes]]:
    """Prepared requests of every class, at the given points."""
    lookups = [f"/v1/route?lon={lon:.6f}&lat={lat:.6f}" for lon, lat in points]
    return {
        "emergency_route": [get(p + "&category=fire") for p in lookups],
        "emergency_intake": [
            post_json("/v1/reports", report(("fire", "medical", "crime")[i % 3], lon, lat))
            for i, (lon, lat) in enumerate(points)
        ],
        "route": [
            get(p + ("&category=waste" if i % 5 == 0 else "")) for i, p in enumerate(lookups)
        ],
        "intake": [
            post_json("/v1/reports", report(("waste", "noise", "road_damage")[i % 3], lon, lat))
            for i, (lon, lat) in enumerate(points)
        ],
        "other": [get("/v1/reports?limit=5")],
    }


def _schedule(n: int, seed: int) -> list[str]:
    """The class of each of ``n`` requests, drawn from ``MIX``."""
    rng = np.random.default_rng(seed)
    names = [name for name, _ in MIX]
    shares = np.array([share for _, share in MIX])
    return [names[i] for i in rng.choice(len(names), size=n, p=shares / shares.sum())]


class Pool:
    """Idle keep-alive connections; a new one when all are busy (up to ``limit``); beyond
    that, requests wait their turn (first come, first served) for a connection."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.limit = limit
        self.idle: deque[Connection] = deque()
        self.waiting: deque[asyncio.Future[Connection | None]] = deque()
        self.open = 0
        self.opened = 0  # connections ever opened: each from an address of its own

    async def take(self) -> Connection:
        """An idle connection, a new one, or the next one freed."""
        while True:
            while self.idle:
                conn = self.idle.pop()
                if time.monotonic() - conn.last_used < STALE_S:
                    return conn
                conn.close()  # the server closes idle keep-alive connections (5 s): a new one
                self.open -= 1
            if self.open < self.limit:
                self.open += 1
                self.opened += 1
                try:
                    return await Connection.open(self.port, self.opened)
                except OSError:
                    self.open -= 1
                    raise
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            self.waiting.append(waiter)
            conn = await waiter
            if conn is not None:
                return conn  # handed over; None: a slot to open a new one freed

    def give(self, conn: Connection | None) -> None:
        """Return a healthy connection (None: it broke and is gone)."""
        if conn is None:
            self.open -= 1
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self.idle.append(conn)


async def _one(pool: Pool, raw: bytes, due: float, tally: Tally) -> None:
    conn: Connection | None = None
    try:
        conn = await pool.take()
        status, retry_after = await conn.request(raw)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        if conn is not None:
            conn.close()
        pool.give(None)
        tally.add(type(exc).__name__, time.monotonic() - due)
        return
    pool.give(conn)
    tally.add(status, time.monotonic() - due, retry_after)


async def closed_loop_capacity(
    port: int, requests: dict[str, list[bytes]], seconds: float
) -> float:
    """Requests/s of the mix from 32 closed-loop connections."""
    classes = _schedule(100_000, 7)
    done = 0
    stop_at = time.monotonic() + seconds

    async def client(offset: int) -> None:
        nonlocal done
        conn = await Connection.open(port, 100_000 + offset)
        i = offset
        while time.monotonic() < stop_at:
            kind = classes[i % len(classes)]
            options = requests[kind]
            await conn.request(options[i % len(options)])
            i += 1
            done += 1
        conn.close()

    started = time.monotonic()
    await asyncio.gather(*(client(1000 * c) for c in range(32)))
    return done / (time.monotonic() - started)


async def open_loop(
    port: int, requests: dict[str, list[bytes]], rate: float, args: argparse.Namespace
) -> tuple[dict[str, Tally], int, dict[str, int], float]:
    """Send at ``rate`` for the duration; (tallies, unanswered, sent per class, lateness)."""
    n = int(rate * args.duration)
    classes = _schedule(n, args.seed)
    tallies = {name: Tally() for name, _ in MIX}
    sent = dict.fromkeys(tallies, 0)
    pool = Pool(port, args.connections)
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic() + 0.05
    worst_lag = 0.0
    for i, kind in enumerate(classes):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0.001:
            await asyncio.sleep(delay)
        else:
            worst_lag = max(worst_lag, -delay)
        options = requests[kind]
        sent[kind] += 1
        tasks.append(asyncio.create_task(_one(pool, options[i % len(options)], due, tallies[kind])))
    stopped = time.monotonic()
    pending = [t for t in tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=max(0.0, stopped + LINGER_S - time.monotonic()))
    unanswered = [t for t in tasks if not t.done()]
    for task in unanswered:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*unanswered, return_exceptions=True)
    for conn in pool.idle:
        conn.close()
    return tallies, len(unanswered), sent, worst_lag


def verdicts(tallies: dict[str, Tally], unanswered: int, sent: dict[str, int]) -> list[str]:
    """The failed checks (empty: passed)."""
    failed = []
    for kind in EMERGENCY_CLASSES:
        if tallies[kind].ok() != sent[kind]:
            failed.append(f"{kind}: {tallies[kind].ok()} of {sent[kind]} answered 2xx")
    for kind, tally in tallies.items():
        fives = {s: c for s, c in tally.statuses.items() if isinstance(s, int) and s >= 500}
        fives.pop(503, None)
        if fives:
            failed.append(f"{kind}: server errors {fives}")
        if tally.shed_without_retry_after:
            failed.append(f"{kind}: {tally.shed_without_retry_after} shed without Retry-After")
    if unanswered:
        failed.append(f"{unanswered} requests unanswered {LINGER_S:.0f} s after the load stopped")
    return failed


def print_results(tallies: dict[str, Tally], sent: dict[str, int]) -> None:
    """The table per class."""
    rows = []
    for kind, tally in tallies.items():
        p50, p99, top = tally.percentiles_ms(50, 99, 100)
        errors = sum(n for s, n in tally.statuses.items() if isinstance(s, str))
        other = tally.total() - tally.ok() - tally.count(429, 503) - errors
        rows.append(
            [kind, sent[kind], tally.ok(), tally.count(429, 503), other, errors, p50, p99, top]
        )
    headers = ["class", "sent", "2xx", "shed 429/503", "other", "conn err", "p50 ms", "p99 ms"]
    print_table([*headers, "max ms"], rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of open-loop load")
    parser.add_argument("--factor", type=float, default=4.0, help="rate as a multiple of capacity")
    parser.add_argument("--rate", type=float, default=None, help="fixed rate (req/s) instead")
    parser.add_argument("--probe", type=float, default=4.0, help="seconds of capacity probe")
    parser.add_argument("--connections", type=int, default=4000, help="most open connections")
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600 or args.factor <= 0 or args.connections < 1:
        parser.error("--duration in (0, 600], --factor > 0, --connections >= 1")
    return args


def _run(coroutine: Any) -> Any:
    """Run on uvloop when installed: the generator must outpace the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the overload test; exit status 1 when a check fails."""
    args = parse_args(argv)
    from geo_router.settings import DEMO_CITY_PROFILE

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpus = cpus[:1] if len(cpus) > 1 else None
    if server_cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus[1:])  # the generator keeps off the server's core
    with tempfile.TemporaryDirectory(prefix="geo_router_overload_") as tmp:
        folder = Path(tmp)
        log = folder / "server.log"
        base, process = serve_city(DEMO_CITY_PROFILE, folder / "data", log, cpus=server_cpus)
        try:
            wait_ready(base, process, log, timeout=300)
            port = int(base.rsplit(":", 1)[1])
            from bench_api_load import random_city_points

            points = random_city_points(DEMO_CITY_PROFILE, 2000, args.seed)
            requests = _requests(points)
            capacity = _run(closed_loop_capacity(port, requests, args.probe))
            rate = args.rate or args.factor * capacity
            where = f"CPU {server_cpus[0]}" if server_cpus else "any CPU"
            print(
                f"server: 1 worker on {where}; capacity of the mix {capacity:,.0f} req/s; "
                f"open loop at {rate:,.0f} req/s for {args.duration:.0f} s",
                flush=True,
            )
            cpu_before, wall_before = time.process_time(), time.monotonic()
            tallies, unanswered, sent, lag = _run(open_loop(port, requests, rate, args))
            busy = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
        finally:
            stop_servers()
        text = log.read_text(errors="replace")
        print_results(tallies, sent)
        shed = sum(t.count(429, 503) for t in tallies.values())
        print(
            f"sent {sum(sent.values()):,}; shed {shed:,}; unanswered {LINGER_S:.0f} s after "
            f"the load stopped: {unanswered}; generator fell behind by {lag * 1000:.0f} ms at "
            f"most (generator busy {busy:.0%} of a CPU); {text.count('Traceback')} tracebacks "
            "in the server log"
        )
        failed = verdicts(tallies, unanswered, sent)
        if not shed:
            print("note: nothing was shed; the rate was not above capacity")
        for line in failed:
            print(f"FAIL  {line}")
        print("PASS" if not failed else "FAIL")
        return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
