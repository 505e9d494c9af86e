"""route-file benchmark: our ``route_file`` vs the same job written with geopandas.

    python benchmarks/bench_routefile.py [--rows 500000] [--keep DIR]

Writes a CSV of random points over New York City (inside the community districts, fixed seed)
with a few extra columns (zero-padded ids, text with commas, timestamps), and a NYC profile:
community districts (``boro_cd``, repair = true), police precincts (``precinct``) and the
FDNY firehouses. Then runs, each in its own subprocess so their peak memories stay apart:

* ours: ``Router.from_profile`` + ``route_file`` (CSV in, CSV out);
* geopandas: ``read_csv`` (as strings), ``points_from_xy``, ``sjoin`` per layer,
  ``sjoin_nearest`` per facility type in UTM 18N, ``to_csv``.

Seconds are the job inside the subprocess (imports excluded, layer loading included); peak MB
is the subprocess's ``ru_maxrss`` (from ``os.wait4``). The geopandas job writes less (no
candidates, no status, no route_error), which only favours it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table, require_shared_data, verdict

DISTRICTS = "nyc_community_districts/community_districts_2020.geojson"
PRECINCTS = "nyc_police_precincts/police_precincts_2020.geojson"
FIREHOUSES = "nyc_firehouses/FDNY_Firehouse_Listing.csv"
SEED = 311
METRIC_CRS = "EPSG:32618"
TARGET = 1.25

PROFILE = """\
name = "New York City (benchmark)"
phone_region = "US"

[[layers]]
name = "community_district"
path = "{data}/{districts}"
id_field = "boro_cd"
repair = true

[[layers]]
name = "police_precinct"
path = "{data}/{precincts}"
id_field = "precinct"

[[facilities]]
type = "fire_station"
path = "{data}/{firehouses}"
id_field = "FacilityName"
name_field = "FacilityName"
lon_field = "Longitude"
lat_field = "Latitude"
"""


def write_profile(data: Path, folder: Path) -> Path:
    """The NYC benchmark profile, pointing at the shared data."""
    path = folder / "nyc.toml"
    path.write_text(
        PROFILE.format(
            data=data.as_posix(), districts=DISTRICTS, precincts=PRECINCTS, firehouses=FIREHOUSES
        )
    )
    return path


def write_points(data: Path, path: Path, rows: int) -> None:
    """``rows`` random points inside NYC's community districts, with extra columns."""
    import geopandas as gpd
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import shapely

    districts = gpd.read_file(data / DISTRICTS)
    city = shapely.union_all(shapely.make_valid(districts.geometry.array))
    shapely.prepare(city)
    rng = np.random.default_rng(SEED)
    minx, miny, maxx, maxy = city.bounds
    lon, lat = np.empty(0), np.empty(0)
    while lon.size < rows:
        x, y = rng.uniform(minx, maxx, rows), rng.uniform(miny, maxy, rows)
        keep = shapely.contains_xy(city, x, y)
        lon, lat = np.concatenate([lon, x[keep]]), np.concatenate([lat, y[keep]])
    lon, lat = np.round(lon[:rows], 6), np.round(lat[:rows], 6)
    notes = np.array(["noise", "Heat/Hot Water", "blocked driveway, again", "pothole"])
    seconds = rng.integers(1_700_000_000, 1_730_000_000, rows).astype("datetime64[s]")
    table = pa.table(
        {
            "unique_key": [f"{i:08d}" for i in range(rows)],
            "created": pa.array(np.datetime_as_string(seconds)),
            "complaint": pa.array(notes[rng.integers(0, notes.size, rows)]),
            "longitude": pa.array(lon).cast(pa.string()),
            "latitude": pa.array(lat).cast(pa.string()),
            "borough_code": [f"{b:02d}" for b in rng.integers(1, 6, rows)],
        }
    )
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))


# --------------------------------------------------------------------------- the two jobs


def ours(source: Path, profile: Path, target: Path) -> None:
    """Our engine end to end: build the router, route the file."""
    from geo_router.batch.routefile import route_file
    from geo_router.city.router import Router

    router = Router.from_profile(profile)
    route_file(source, target, router, progress=False)


def geopandas_job(source: Path, profile: Path, target: Path) -> None:
    """The same job written with geopandas, as a careful user would."""
    import geopandas as gpd
    import pandas as pd

    from geo_router.city.profile import load_profile

    spec = load_profile(profile)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    lon = pd.to_numeric(frame["longitude"], errors="coerce")
    lat = pd.to_numeric(frame["latitude"], errors="coerce")
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    for layer in spec.layers:
        zones = gpd.read_file(layer.path)[[layer.id_field, "geometry"]]
        if layer.repair:
            zones["geometry"] = zones.make_valid()
        column = f"{layer.name}_id"
        zones = zones.rename(columns={layer.id_field: column})
        joined = gpd.sjoin(points, zones, predicate="within", how="left")
        joined = joined[~joined.index.duplicated(keep="first")]
        frame[column] = joined[column].fillna("").to_numpy()
    points_m = points.to_crs(METRIC_CRS)
    for facility in spec.facilities:
        table = pd.read_csv(facility.path, dtype={facility.id_field: str})
        sites = gpd.GeoDataFrame(
            {f"{facility.type}_id": table[facility.id_field]},
            geometry=gpd.points_from_xy(table[facility.lon_field], table[facility.lat_field]),
            crs=4326,
        ).to_crs(METRIC_CRS)
        joined = gpd.sjoin_nearest(points_m, sites, how="left", distance_col="distance")
        joined = joined[~joined.index.duplicated(keep="first")]
        frame[f"{facility.type}_id"] = joined[f"{facility.type}_id"].to_numpy()
        frame[f"{facility.type}_distance_m"] = joined["distance"].round(1).to_numpy()
    frame.to_csv(target, index=False)


JOBS = {"ours": ours, "geopandas": geopandas_job}


def worker(job: str, source: Path, profile: Path, target: Path) -> None:
    """Run one job and print its seconds as JSON (imports are done before the clock starts)."""
    import geopandas  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.csv  # noqa: F401

    import geo_router.batch.routefile
    import geo_router.city.router  # noqa: F401

    started, cpu_started = time.perf_counter(), time.process_time()
    JOBS[job](source, profile, target)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu}))


def run_job(job: str, source: Path, profile: Path, target: Path) -> tuple[float, float, float]:
    """Run one job in a subprocess; its seconds, CPU seconds and peak resident memory (MB)."""
    command = [sys.executable, __file__, "--worker", job]
    command += ["--input", str(source), "--profile", str(profile), "--output", str(target)]
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"{job} job failed (exit {process.returncode})")
        out.seek(0)
        timing = json.loads(out.read().strip().splitlines()[-1])
    return timing["seconds"], timing["cpu_seconds"], usage.ru_maxrss / 1024


def agreement(ours_csv: Path, theirs_csv: Path) -> list[str]:
    """How often the two outputs name the same zone / facility (compared as text)."""
    import pandas as pd

    columns = ["community_district_id", "police_precinct_id", "fire_station_id"]
    read = {"dtype": str, "keep_default_na": False, "usecols": columns}
    a, b = pd.read_csv(ours_csv, **read), pd.read_csv(theirs_csv, **read)
    lines = []
    for column in columns:
        same = (a[column] == b[column]).mean()
        lines.append(f"{column}: ours = geopandas for {100 * same:.3f}% of rows")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--keep", type=Path, help="keep the files in this folder")
    parser.add_argument("--worker", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.input, args.profile, args.output)
        return 0
    data = require_shared_data(DISTRICTS, PRECINCTS, FIREHOUSES)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        source, profile = folder / "nyc_points.csv", write_profile(data, folder)
        write_points(data, source, args.rows)
        print(
            f"{args.rows:,} rows, {source.stat().st_size / 2**20:.1f} MB CSV; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        results = {}
        for job in ("ours", "geopandas"):
            target = folder / f"routed_{job}.csv"
            results[job] = run_job(job, source, profile, target)
            print(f"{job}: {results[job][0]:.2f} s", flush=True)
        base = results["geopandas"][0]
        rows = [
            [job, args.rows, seconds, cpu, args.rows / seconds, base / seconds, peak]
            for job, (seconds, cpu, peak) in results.items()
        ]
        headers = ["job", "rows", "seconds", "cpu s", "rows/s", "x vs geopandas", "peak MB"]
        print_table(headers, rows)
        print("\n".join(agreement(folder / "routed_ours.csv", folder / "routed_geopandas.csv")))
        cpu_ratio = results["geopandas"][1] / results["ours"][1]
        print(verdict("route-file vs geopandas", base / results["ours"][0], TARGET, cpu_ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
