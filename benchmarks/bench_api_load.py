"""HTTP load benchmark of the routing API against a bare FastAPI baseline, on 127.0.0.1 only.

Starts the real service (``uvicorn api.main:create_app_from_env --factory``, demo city, a
temporary data dir, so it runs open on loopback) and ``benchmarks/hello_app.py`` with the same
uvicorn options, with 1 and then 2 workers; loads ``GET /v1/route`` (rotating through many
random demo-city points, so no cache can help) and ``GET /hello`` with ``wrk`` (or a bounded
asyncio load generator when ``wrk`` is missing), in alternating rounds; measures the unloaded
latency with sequential requests on one connection and the batch throughput of
``POST /v1/route/batch``. Prints a table, the load generator's own CPU time and PASS/FAIL
against the targets. Every server it starts is killed at exit.

Run from the repository root::

    python benchmarks/bench_api_load.py                 # 3 rounds of 6 s per target
    python benchmarks/bench_api_load.py --rounds 1 --duration 5 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import HOST, REPO_ROOT, free_port, latest_exited, launch, stop_servers

ROUTE_APP = "api.main:create_app_from_env"
HELLO_APP = "benchmarks.hello_app:create_app"
READY_TIMEOUT_S = 180.0
JSON_MARK = "GEO_ROUTER_WRK_JSON "

# Targets (see benchmarks/README.md). Route vs hello: issue 9's target for the one
# implementation of GET /v1/route (a lean route inside the app's routing and middleware).
TARGET_ROUTE_VS_HELLO = 1.2
TARGET_SCALING_2W = 1.7
TARGET_P99_MS = 10.0
TARGET_UNLOADED_P50_MS = 1.0
TARGET_BATCH_POINTS_PER_S = 300_000.0


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One load run: throughput and latency percentiles."""

    target: str
    workers: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str
    cpu_ms_per_request: float  #: server CPU time per request; meaningful on a busy machine
    load_cpu_ms_per_request: float  #: the load generator's own CPU time per request
    rounds: int = 1

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- servers


def _uvicorn_options() -> list[str]:
    # The same loop/http implementation for both apps; the fastest ones when installed.
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401

        return ["--loop", "uvloop", "--http", "httptools"]
    except ImportError:
        return ["--loop", "asyncio", "--http", "h11"]


def start_server(app: str, workers: int, env: dict[str, str], log: Path) -> tuple[str, int]:
    """Start ``uvicorn app --factory`` on loopback; returns (base URL, pid)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        *_uvicorn_options(),
    ]
    process = launch(command, env, log)
    return f"http://{HOST}:{port}", process.pid


def wait_ready(base: str, path: str, log: Path, *, consecutive: int) -> None:
    """Poll ``path`` until it answers 200 ``consecutive`` times in a row (every worker up)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    streak = 0
    while time.monotonic() < deadline:
        if latest_exited():
            raise SystemExit(f"server exited during startup; see {log}:\n{_tail(log)}")
        status = _get_status(base, path)
        streak = streak + 1 if status == 200 else 0
        if streak >= consecutive:
            return
        time.sleep(0.05 if status == 200 else 0.5)
    raise SystemExit(f"{base}{path} not ready within {READY_TIMEOUT_S:.0f} s; see {log}")


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _get_status(base: str, path: str) -> int:
    host, port = _host_port(base)
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            head = sock.recv(64)
        return int(head.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return 0


def _host_port(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


# ---------------------------------------------------------------- points


def random_city_points(city: Path, n: int, seed: int) -> np.ndarray:
    """``n`` uniform random (lon, lat) points inside the city's first zone layer, shape (n, 2)."""
    from geo_router.city.profile import load_profile

    profile = load_profile(city)
    layer_path = Path(profile.layers[0].path)
    collection = json.loads(layer_path.read_text(encoding="utf-8"))
    geometries = shapely.from_geojson([json.dumps(f["geometry"]) for f in collection["features"]])
    area = shapely.union_all(geometries)
    shapely.prepare(area)
    xmin, ymin, xmax, ymax = area.bounds
    rng = np.random.default_rng(seed)
    kept = np.empty((0, 2))
    while len(kept) < n:  # rejection sampling; a handful of rounds at most
        xy = rng.uniform((xmin, ymin), (xmax, ymax), size=(4 * n, 2))
        kept = np.vstack([kept, xy[shapely.contains_xy(area, xy[:, 0], xy[:, 1])]])
    return np.round(kept[:n], 6)


def route_paths(points: np.ndarray) -> list[str]:
    """``GET /v1/route`` paths for the points."""
    return [f"/v1/route?lon={lon:.6f}&lat={lat:.6f}" for lon, lat in points]


# ---------------------------------------------------------------- load: wrk


def _wrk_script(paths: Sequence[str], folder: Path) -> Path:
    quoted = ",\n".join(f'  "{p}"' for p in paths)
    script = folder / f"paths_{abs(hash(tuple(paths)))}.lua"
    script.write_text(
        f"local paths = {{\n{quoted}\n}}\n"
        "local n = #paths\n"
        "local counter = 0\n"
        "function setup(thread) thread:set('seed', math.random(1, 1000000)) end\n"
        "function init(args) math.randomseed(seed or os.time()) end\n"
        "function request()\n"
        "  return wrk.format('GET', paths[math.random(n)])\n"
        "end\n"
        "function done(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        f"  io.write(string.format('{JSON_MARK}"
        '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\\n\','
        " summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),"
        " e.connect + e.read + e.write + e.status + e.timeout))\n"
        "end\n",
        encoding="utf-8",
    )
    return script


def run_wrk(
    base: str, paths: Sequence[str], *, connections: int, seconds: float, folder: Path
) -> tuple[int, float, float, float, int]:
    """Run wrk; returns (requests, seconds, p50 ms, p99 ms, errors)."""
    script = _wrk_script(paths, folder)
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        base,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith(JSON_MARK))
    stats = json.loads(line.removeprefix(JSON_MARK))
    return (
        int(stats["requests"]),
        stats["duration_us"] / 1e6,
        stats["p50_us"] / 1e3,
        stats["p99_us"] / 1e3,
        int(stats["errors"]),
    )


# ---------------------------------------------------------------- load: Python fallback


async def _one_connection(
    host: str, port: int, paths: Sequence[str], start: int, deadline: float, lat_ns: list[int]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    i = start
    try:
        while time.perf_counter() < deadline:
            path = paths[i % len(paths)]
            i += 7919  # a prime stride: each connection walks the list differently
            t0 = time.perf_counter_ns()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status, _ = await _read_response(reader)
            lat_ns.append(time.perf_counter_ns() - t0)
            errors += status != 200
    finally:
        writer.close()
    return errors


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next(
        (int(x.split(":", 1)[1]) for x in lines if x.lower().startswith("content-length:")), None
    )
    if length is None:
        raise RuntimeError(f"response without Content-Length: {lines[0]!r}")
    return status, await reader.readexactly(length)


def run_python_load(
    base: str, paths: Sequence[str], *, connections: int, seconds: float
) -> tuple[int, float, float, float, int]:
    """Bounded asyncio keep-alive load (wrk's fallback; one core, so it saturates earlier)."""
    host, port = _host_port(base)
    lat_ns: list[int] = []

    async def main() -> tuple[int, float]:
        t0 = time.perf_counter()
        deadline = t0 + seconds
        tasks = [
            _one_connection(host, port, paths, c, deadline, lat_ns) for c in range(connections)
        ]
        errors = sum(await asyncio.gather(*tasks))
        return errors, time.perf_counter() - t0

    errors, elapsed = asyncio.run(main())
    ms = np.asarray(lat_ns) / 1e6
    return len(ms), elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), errors


# ---------------------------------------------------------------- unloaded latency, batch


def sequential_latency_ms(
    base: str, paths: Sequence[str], *, count: int, budget_s: float
) -> np.ndarray:
    """Latencies of ``count`` back-to-back requests on one keep-alive connection (bounded)."""
    host, port = _host_port(base)

    async def main() -> list[int]:
        reader, writer = await asyncio.open_connection(host, port)
        out: list[int] = []
        deadline = time.perf_counter() + budget_s
        try:
            for i in range(count):
                if time.perf_counter() > deadline:
                    break
                t0 = time.perf_counter_ns()
                writer.write(
                    f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
                )
                await _read_response(reader)
                out.append(time.perf_counter_ns() - t0)
        finally:
            writer.close()
        return out

    return np.asarray(asyncio.run(main())) / 1e6


def batch_points_per_s(base: str, points: np.ndarray, *, repeats: int) -> tuple[float, float]:
    """POST the points to ``/v1/route/batch`` ``repeats`` times; (best points/s, median s).

    A plain keep-alive socket reads the answer straight into one buffer: a Python HTTP
    client spends longer decoding a 6 MB answer than the server takes to route it, and
    this measures the service.
    """
    body = json.dumps({"points": points.tolist(), "k": 1}).encode()
    host, port = _host_port(base)
    request = (
        f"POST /v1/route/batch HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    seconds = []
    with socket.create_connection((host, port), timeout=120) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(repeats):
            t0 = time.perf_counter()
            sock.sendall(request)
            status, answer = _read_answer(sock)
            seconds.append(time.perf_counter() - t0)
            if status != 200:
                raise SystemExit(f"POST /v1/route/batch answered {status}: {answer[:300]!r}")
            if not answer.startswith(b'{"count":%d' % len(points)):
                raise SystemExit(f"unexpected batch answer: {answer[:300]!r}")
    return len(points) / min(seconds), statistics.median(seconds)


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length, from a socket."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection mid-answer")
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next(int(x.split(":", 1)[1]) for x in lines if x.lower().startswith("content-length:"))
    buffer = bytearray(length)
    view = memoryview(buffer)
    got = len(rest)
    view[:got] = rest
    while got < length:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise SystemExit("the server closed the connection mid-answer")
        got += n
    return status, bytes(buffer)


# ---------------------------------------------------------------- orchestration


@contextlib.contextmanager
def serving_all(
    specs: Sequence[tuple[str, str, Path]], workers: int, env: dict[str, str]
) -> Iterator[list[tuple[str, int]]]:
    """Servers ``(app, ready path, log)`` for the block, every worker ready: [(base URL, pid)].

    Both are up at once so that their load runs can alternate; an idle server costs nothing.
    """
    try:
        servers = []
        for app, ready, log in specs:
            base, pid = start_server(app, workers, env, log)
            wait_ready(base, ready, log, consecutive=20 * workers)
            servers.append((base, pid))
        yield servers
    finally:
        stop_servers()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        # After the command name: state ppid pgrp ... utime(14th) stime(15th) of the full line.
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def measure(
    target: str,
    server: tuple[str, int],
    paths: Sequence[str],
    workers: int,
    args: argparse.Namespace,
    folder: Path,
) -> LoadResult:
    """Warm up, then one load run of ``args.duration`` seconds; also server and client CPU."""
    base, pgid = server
    use_wrk = shutil.which("wrk") is not None and not args.python_load
    tool = "wrk" if use_wrk else "python"
    # wrk is a waited-for child; the Python fallback runs in this process
    who = resource.RUSAGE_CHILDREN if use_wrk else resource.RUSAGE_SELF
    for seconds in (args.warmup, args.duration):
        if seconds <= 0:
            continue
        cpu_before = group_cpu_seconds(pgid)
        load_before = _cpu_seconds(who)
        if use_wrk:
            stats = run_wrk(
                base, paths, connections=args.connections, seconds=seconds, folder=folder
            )
        else:
            stats = run_python_load(base, paths, connections=args.connections, seconds=seconds)
        cpu = group_cpu_seconds(pgid) - cpu_before
        load_cpu = _cpu_seconds(who) - load_before
    requests, elapsed, p50, p99, errors = stats
    per = 1e3 / requests if requests else float("nan")
    return LoadResult(
        target, workers, requests, elapsed, p50, p99, errors, tool, cpu * per, load_cpu * per
    )


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def combine_rounds(runs: list[LoadResult]) -> LoadResult:
    """Several rounds of one target as one result: mean throughput, median percentiles."""
    first = runs[0]
    requests = sum(r.requests for r in runs)
    return LoadResult(
        first.target,
        first.workers,
        requests,
        sum(r.seconds for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        first.tool,
        sum(r.cpu_ms_per_request * r.requests for r in runs) / requests,
        sum(r.load_cpu_ms_per_request * r.requests for r in runs) / requests,
        rounds=len(runs),
    )


def _scaling_ceiling(one: LoadResult, two: LoadResult) -> str:
    """What the machine allows 2 workers, given the CPU the load generator takes itself.

    With the load generator on the same cores, 2 workers and the generator share
    ``os.cpu_count()`` cores: at most ``cores / (server + generator CPU per request)``
    requests per second, whatever the server does.
    """
    cores = os.cpu_count() or 1
    per_request_ms = two.cpu_ms_per_request + two.load_cpu_ms_per_request
    if not per_request_ms > 0 or one.rps <= 0:
        return "no ceiling computed"
    ceiling = min(2 * one.rps, cores * 1e3 / per_request_ms)
    # With two cores of their own, 2 workers would serve 2 / (CPU per request at 2 workers)
    # against 1 / (CPU per request at 1 worker): what the server's own contention allows.
    own_cores = 2 * one.cpu_ms_per_request / two.cpu_ms_per_request
    return (
        f"{cores} cores shared with the load generator "
        f"({two.load_cpu_ms_per_request * 1e3:.0f} us CPU/request) cap it at "
        f"{ceiling / one.rps:.2f}x here; server CPU/request "
        f"{one.cpu_ms_per_request * 1e3:.0f} -> {two.cpu_ms_per_request * 1e3:.0f} us, "
        f"{own_cores:.2f}x on cores of its own"
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(
    results: list[LoadResult],
    unloaded: dict[str, np.ndarray],
    batch: tuple[float, float] | None,
    args: argparse.Namespace,
) -> list[str]:
    """Print the table and the PASS/FAIL lines; returns the FAIL lines."""
    by = {(r.target, r.workers): r for r in results}
    print()
    print(
        f"{'target':<8} {'workers':>7} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'route/hello':>11} {'cpu ms/req':>10} {'load ms/req':>11}  tool"
    )
    for r in results:
        hello = by.get(("hello", r.workers))
        ratio = f"{r.rps / hello.rps:.2f}" if r.target == "route" and hello else ""
        print(
            f"{r.target:<8} {r.workers:>7} {r.rps:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{r.errors:>6} {ratio:>11} {r.cpu_ms_per_request:>10.3f} "
            f"{r.load_cpu_ms_per_request:>11.3f}  {r.tool} x{r.rounds}"
        )
    for target, ms in unloaded.items():
        print(
            f"unloaded {target}: p50 {np.percentile(ms, 50):.3f} ms, "
            f"p99 {np.percentile(ms, 99):.3f} ms over {len(ms)} sequential requests"
        )
    if batch:
        print(
            f"batch: {args.batch_points} points, best {batch[0]:,.0f} points/s, "
            f"median {batch[1] * 1e3:.0f} ms per request"
        )
    checks: list[tuple[str, bool]] = []
    route1, hello1, route2 = by.get(("route", 1)), by.get(("hello", 1)), by.get(("route", 2))
    if route1 and hello1:
        ratio = route1.rps / hello1.rps
        checks.append(
            (
                f"route >= {TARGET_ROUTE_VS_HELLO}x hello, 1 worker: {ratio:.2f}x",
                ratio >= TARGET_ROUTE_VS_HELLO,
            )
        )
    if route1 and route2:
        scaling = route2.rps / route1.rps
        checks.append(
            (
                f"2-worker scaling >= {TARGET_SCALING_2W}x: {scaling:.2f}x "
                f"({_scaling_ceiling(route1, route2)})",
                scaling >= TARGET_SCALING_2W,
            )
        )
    for r in results:
        if r.target == "route":
            checks.append(
                (
                    f"route p99 < {TARGET_P99_MS:.0f} ms at {args.connections} connections, "
                    f"{r.workers} worker(s): {r.p99_ms:.2f} ms",
                    r.p99_ms < TARGET_P99_MS,
                )
            )
    if "route" in unloaded:
        p50 = float(np.percentile(unloaded["route"], 50))
        checks.append(
            (
                f"unloaded route p50 < {TARGET_UNLOADED_P50_MS:.0f} ms: {p50:.3f} ms",
                p50 < TARGET_UNLOADED_P50_MS,
            )
        )
    if batch:
        checks.append(
            (
                f"batch >= {TARGET_BATCH_POINTS_PER_S:,.0f} points/s: {batch[0]:,.0f}",
                batch[0] >= TARGET_BATCH_POINTS_PER_S,
            )
        )
    if any(r.errors for r in results):
        checks.append(("no errors under load", False))
    print()
    for text, ok in checks:
        print(f"{_verdict(ok)}  {text}")
    return [text for text, ok in checks if not ok]


def _summary(
    results: list[LoadResult],
    unloaded: dict[str, np.ndarray],
    batch: tuple[float, float] | None,
    failures: list[str],
) -> dict[str, object]:
    rows = [
        {
            "target": r.target,
            "workers": r.workers,
            "rps": r.rps,
            "p50_ms": r.p50_ms,
            "p99_ms": r.p99_ms,
            "errors": r.errors,
            "cpu_ms_per_request": r.cpu_ms_per_request,
            "load_cpu_ms_per_request": r.load_cpu_ms_per_request,
            "rounds": r.rounds,
            "tool": r.tool,
        }
        for r in results
    ]
    return {
        "results": rows,
        "unloaded_p50_ms": {k: float(np.percentile(v, 50)) for k, v in unloaded.items()},
        "batch_points_per_s": batch[0] if batch else None,
        "failures": failures,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per load run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="load runs per target, alternating hello/route"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--points", type=int, default=2000, help="distinct route points")
    parser.add_argument("--batch-points", type=int, default=10_000)
    parser.add_argument("--batch-repeats", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=2000, help="unloaded requests")
    parser.add_argument("--city", type=Path, default=None, help="profile (default: demo city)")
    parser.add_argument("--python-load", action="store_true", help="ignore wrk, use asyncio")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120 or not 0 <= args.warmup <= 30:
        parser.error("--duration must be in (0, 120] s and --warmup in [0, 30] s")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be in [1, 20]")
    if not 1 <= args.connections <= 512:
        parser.error("--connections must be in [1, 512]")
    return args


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop servers


def main(argv: Sequence[str] | None = None) -> int:
    """Run the whole benchmark; exit status 1 when a target fails."""
    args = parse_args(argv)
    from geo_router.settings import DEMO_CITY_PROFILE

    city = (args.city or DEMO_CITY_PROFILE).resolve()
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    points = random_city_points(city, args.points, args.seed)
    batch_points = random_city_points(city, args.batch_points, args.seed + 1)
    paths = route_paths(points)
    load1 = os.getloadavg()[0]
    print(f"city {city}; {len(paths)} route points; {os.cpu_count()} CPUs; load {load1:.2f}")
    print(f"load tool: {'wrk' if shutil.which('wrk') and not args.python_load else 'python'}")

    results: list[LoadResult] = []
    unloaded: dict[str, np.ndarray] = {}
    batch: tuple[float, float] | None = None
    with tempfile.TemporaryDirectory(prefix="geo_router_bench_") as tmp:
        folder = Path(tmp)
        env = {
            **os.environ,
            "GEO_ROUTER_CITY": str(city),
            "GEO_ROUTER_DATA_DIR": str(folder / "data"),
            "GEO_ROUTER_HOST": HOST,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }
        env.pop("GEO_ROUTER_DATABASE_URL", None)  # the embedded default, never a shared DB
        targets = {
            "hello": (HELLO_APP, "/hello", ["/hello"]),
            "route": (ROUTE_APP, "/readyz", paths),
        }
        for workers in worker_counts:
            print(f"-- {workers} worker(s): hello and route servers ...", flush=True)
            specs = [
                (app, ready, folder / f"{t}_{workers}.log")
                for t, (app, ready, _) in targets.items()
            ]
            block_env = env
            if workers > 1:  # as geo-router serve runs them: metrics in multiprocess mode
                metrics = folder / f"metrics_{workers}"
                metrics.mkdir()
                block_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
            with serving_all(specs, workers, block_env) as servers:
                by_target = dict(zip(targets, servers, strict=True))
                runs: dict[str, list[LoadResult]] = {t: [] for t in targets}
                for round_no in range(args.rounds):  # alternate: drift hits both alike
                    for target, server in by_target.items():
                        print(f"   round {round_no + 1}/{args.rounds}: {target}", flush=True)
                        runs[target].append(
                            measure(target, server, targets[target][2], workers, args, folder)
                        )
                results.extend(combine_rounds(r) for r in runs.values())
                if workers == 1 and args.sequential:
                    for target, (base, _pgid) in by_target.items():
                        unloaded[target] = sequential_latency_ms(
                            base, targets[target][2], count=args.sequential, budget_s=20.0
                        )
                if workers == 1 and args.batch_points:
                    base = by_target["route"][0]
                    batch = batch_points_per_s(base, batch_points, repeats=args.batch_repeats)
    failures = report(results, unloaded, batch, args)
    if args.json:
        args.json.write_text(json.dumps(_summary(results, unloaded, batch, failures), indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
