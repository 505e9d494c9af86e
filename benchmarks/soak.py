"""Soak: lookups and intake together for a long time on a 10,000-zone layer; fails on any error.

Generates a city (the demo city plus a ``grid`` layer of 10,000 square zones over it), serves
it with ``geo-router serve`` (127.0.0.1, a temporary data dir), and runs closed-loop clients
for ``--duration`` seconds (5 minutes by default): ``--lookups`` connections of
``GET /v1/route`` at random points (one in four with a category) and ``--intake``
connections of ``POST /v1/reports`` (one in ten an emergency). Prints requests/s and
p50/p99/p99.9 per kind, and exits 1 on any error (a non-2xx answer or a dropped connection).
The CI runs it for a few seconds (``tests/test_soak.py``).

Run from the repository root::

    python benchmarks/soak.py                      # 5 minutes
    python benchmarks/soak.py --duration 30 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

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

GRID_SIDE = 100  # 100 x 100 = 10,000 zones
ROUTE_CATEGORIES = ("fire", "waste", "noise", "medical")
INTAKE_CATEGORIES = ("waste", "road_damage", "noise", "water_pipe", "waste", "road_damage")


def grid_city(folder: Path, side: int = GRID_SIDE) -> tuple[Path, tuple[float, ...]]:
    """The demo city plus a ``grid`` layer of ``side`` x ``side`` zones; (profile, bounds)."""
    from geo_router.settings import DEMO_CITY_PROFILE

    shutil.copytree(DEMO_CITY_PROFILE.parent, folder)
    kelurahan = json.loads((folder / "kelurahan.geojson").read_text(encoding="utf-8"))
    xs, ys = [], []
    for feature in kelurahan["features"]:
        for ring in _rings(feature["geometry"]):
            xs += [p[0] for p in ring]
            ys += [p[1] for p in ring]
    xmin, xmax, ymin, ymax = min(xs), max(xs), min(ys), max(ys)
    dx, dy = (xmax - xmin) / side, (ymax - ymin) / side
    features = []
    for i in range(side):
        for j in range(side):
            x0, y0 = xmin + i * dx, ymin + j * dy
            ring = [[x0, y0], [x0 + dx, y0], [x0 + dx, y0 + dy], [x0, y0 + dy], [x0, y0]]
            features.append(
                {
                    "type": "Feature",
                    "properties": {"kode": f"G{i:03d}{j:03d}", "nama": f"grid {i},{j}"},
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
    grid = {"type": "FeatureCollection", "features": features}
    (folder / "grid.geojson").write_text(json.dumps(grid), encoding="utf-8")
    profile = folder / DEMO_CITY_PROFILE.name
    text = profile.read_text(encoding="utf-8")
    layer = (
        '[[layers]]\nname = "grid"\npath = "grid.geojson"\n'
        'id_field = "kode"\nname_field = "nama"\n\n'
    )
    first = text.index("[[layers]]")
    profile.write_text(text[:first] + layer + text[first:], encoding="utf-8")
    return profile, (xmin, ymin, xmax, ymax)


def _rings(geometry: dict[str, object]) -> list[list[list[float]]]:
    coords = geometry["coordinates"]
    polygons = coords if geometry["type"] == "MultiPolygon" else [coords]
    return [ring for polygon in polygons for ring in polygon]  # type: ignore[union-attr]


async def _client(
    port: int, requests: list[bytes], tally: Tally, stop_at: float, offset: int
) -> None:
    """One closed-loop connection cycling through ``requests`` until ``stop_at``."""
    conn = await Connection.open(port)
    i = offset
    try:
        while time.monotonic() < stop_at:
            raw = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            try:
                status, _ = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError) as exc:
                tally.add(type(exc).__name__, time.perf_counter() - started)
                conn.close()
                conn = await Connection.open(port)
                continue
            tally.add(status, time.perf_counter() - started)
    finally:
        conn.close()


async def _soak(port: int, args: argparse.Namespace, bounds: tuple[float, ...]) -> dict[str, Tally]:
    rng = np.random.default_rng(args.seed)
    xmin, ymin, xmax, ymax = bounds
    points = rng.uniform((xmin, ymin), (xmax, ymax), size=(4000, 2))
    lookups = []
    for n, (lon, lat) in enumerate(points):
        category = f"&category={ROUTE_CATEGORIES[n % 4]}" if n % 4 == 0 else ""
        lookups.append(get(f"/v1/route?lon={lon:.6f}&lat={lat:.6f}{category}"))
    intake = []
    for n, (lon, lat) in enumerate(points[:1000]):
        category = "fire" if n % 10 == 0 else INTAKE_CATEGORIES[n % len(INTAKE_CATEGORIES)]
        intake.append(post_json("/v1/reports", report(category, lon, lat)))
    tallies = {"lookup": Tally(), "intake": Tally()}
    stop_at = time.monotonic() + args.duration
    clients = [
        _client(port, lookups, tallies["lookup"], stop_at, 97 * c) for c in range(args.lookups)
    ]
    clients += [
        _client(port, intake, tallies["intake"], stop_at, 31 * c) for c in range(args.intake)
    ]
    await asyncio.gather(*clients)
    return tallies


def report_table(tallies: dict[str, Tally], seconds: float) -> int:
    """Print the table; the number of errors."""
    rows, errors = [], 0
    for kind, tally in tallies.items():
        bad = tally.total() - tally.ok()
        errors += bad
        p50, p99, p999 = tally.percentiles_ms(50, 99, 99.9)
        rows.append([kind, tally.total(), tally.total() / seconds, p50, p99, p999, bad])
    print_table(["kind", "requests", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"], rows)
    for kind, tally in tallies.items():
        odd = {s: n for s, n in tally.statuses.items() if not (isinstance(s, int) and s < 300)}
        if odd:
            print(f"{kind} errors by status: {odd}")
    return errors


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--lookups", type=int, default=8, help="lookup connections")
    parser.add_argument("--intake", type=int, default=2, help="intake connections")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--grid", type=int, default=GRID_SIDE, help="grid side (zones: side^2)")
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.lookups < 0 or args.intake < 0:
        parser.error("--duration must be positive, connection counts not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; exit status 1 on any error."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="geo_router_soak_") as tmp:
        folder = Path(tmp)
        city, bounds = grid_city(folder / "city", args.grid)
        log = folder / "server.log"
        print(f"city: demo city + grid layer of {args.grid**2:,} zones; {os.cpu_count()} CPUs")
        base, process = serve_city(city, folder / "data", log, workers=args.workers)
        try:
            wait_ready(base, process, log, timeout=300)
            port = int(base.rsplit(":", 1)[1])
            print(
                f"soak: {args.lookups} lookup + {args.intake} intake connections, "
                f"{args.duration:.0f} s ...",
                flush=True,
            )
            started = time.monotonic()
            tallies = asyncio.run(_soak(port, args, bounds))
            seconds = time.monotonic() - started
        finally:
            stop_servers()
            tracebacks = log.read_text(errors="replace").count("Traceback")
        errors = report_table(tallies, seconds)
        total = sum(t.total() for t in tallies.values())
        print(
            f"{total:,} requests in {seconds:.1f} s: {total / seconds:,.0f} req/s; "
            f"{errors} errors; {tracebacks} tracebacks in the server log"
        )
        ok = errors == 0 and tracebacks == 0 and total > 0
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
