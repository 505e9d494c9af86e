"""Kill -9 the server at random moments during a stream of mixed intake; prove nothing is lost.

For each backend (SQLite, the embedded default, and PostgreSQL when a URL is given), the
script starts ``uvicorn api.main:create_app_from_env`` on the demo city over a fresh store,
streams reports from several client threads (emergencies and not, with and without an
``Idempotency-Key``, some with a reporter phone), and SIGKILLs the server's whole process group
at a random moment, ``--kills`` times, restarting it each time. Then, with the server up once
more, it re-sends every in-doubt request (sent, no answer) that carried a key, with that key,
and checks, reading the database directly:

* every acknowledged (2xx) report is present exactly once, with the id it was answered with,
  and intact (category, channel, description, location as sent; its creation in the history);
* every in-doubt request re-sent with its key made exactly one report (its answer names it);
  an in-doubt request without a key made at most one;
* acknowledged keys still replay: the same key and body answer the same id;
* the database is sound: SQLite ``PRAGMA integrity_check`` answers ``ok`` (and the foreign
  keys hold); on PostgreSQL every report has its history and zone rows consistent.

Exits 1 on any violation. ``--json FILE`` writes the counts. Usage::

    python benchmarks/kill_durability.py [--kills 100] [--backends sqlite,postgres]
        [--database-url postgresql+psycopg://...] [--clients 4] [--workers 1] [--seed 1]

PostgreSQL needs ``--database-url`` (or ``GEO_ROUTER_TEST_DATABASE_URL``); each run works in a
schema of its own, dropped at the end. Every server it starts is killed at exit.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import HOST, REPO_ROOT, free_port, kill_group, launch

sys.path.insert(0, str(REPO_ROOT))

from geo_router.intake.secrets import write_new_secrets_file
from geo_router.settings import DEMO_CITY_PROFILE
from geo_router.store import Store, make_engine
from geo_router.store.engine import scratch_schema

APP = "api.main:create_app_from_env"
READY_TIMEOUT_S = 90.0
EMERGENCY = ("fire", "crime", "medical", "flooding")
ROUTINE = ("water_pipe", "road_damage", "waste", "noise")


# ---------------------------------------------------------------- the server


def start_server(
    env: dict[str, str], workers: int, log: Path
) -> tuple[int, subprocess.Popen[bytes]]:
    """Start uvicorn in a process group of its own; returns (port, process)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", APP, "--factory", "--host", HOST]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    command += ["--no-access-log"]
    process = launch(command, env, log)
    return port, process


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``/readyz`` until it answers 200 (the city loaded, the store open)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise SystemExit(f"server exited during startup; see {log}:\n{tail}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server not ready within {READY_TIMEOUT_S:.0f} s; see {log}")


# ---------------------------------------------------------------- the stream


@dataclass
class Sent:
    """One report request and what became of it."""

    body: dict[str, Any]
    key: str | None
    emergency: bool
    status: int | None = None  #: None: in doubt (no answer before the kill)
    report_id: str | None = None
    resent: bool = False  #: in doubt, then re-sent with its key after the kills


@dataclass
class Ledger:
    """Every request of a backend's run, shared by the client threads."""

    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Sent) -> None:
        with self.lock:
            self.sent.append(item)


def _body(rng: random.Random, point: tuple[float, float]) -> tuple[dict[str, Any], bool]:
    emergency = rng.random() < 0.35
    category = rng.choice(EMERGENCY if emergency else ROUTINE)
    lon = point[0] + rng.uniform(-0.0005, 0.0005)
    lat = point[1] + rng.uniform(-0.0005, 0.0005)
    body: dict[str, Any] = {
        "category": category,
        "description": f"kill-durability {uuid.uuid4().hex}",
        "location": {"lon": round(lon, 7), "lat": round(lat, 7)},
    }
    if rng.random() < 0.3:  # a pool large enough to stay under the hourly limit
        body["reporter_phone"] = f"+62812{rng.randrange(10**7):07d}"
    return body, emergency


def post_report(
    port: int, token: str, body: dict[str, Any], key: str | None, timeout: float = 30.0
) -> tuple[int, dict[str, Any]]:
    """POST /v1/reports once; raises OSError/HTTPException when the server is gone."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", "/v1/reports", body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else {})
    finally:
        conn.close()


def stream(
    port: int,
    token: str,
    point: tuple[float, float],
    ledger: Ledger,
    stop: threading.Event,
    seed: int,
) -> None:
    """File reports one after another until ``stop`` or the server dies."""
    rng = random.Random(seed)
    while not stop.is_set():
        body, emergency = _body(rng, point)
        key = uuid.uuid4().hex if rng.random() < 0.5 else None
        item = Sent(body, key, emergency)
        ledger.add(item)
        try:
            status, answer = post_report(port, token, body, key)
        except (OSError, http.client.HTTPException):
            return  # in doubt: the server died with this request in flight
        item.status = status
        if 200 <= status < 300:
            item.report_id = answer.get("id")
        elif status >= 500:
            print(f"  server answered {status}: {str(answer)[:200]}", flush=True)


# ---------------------------------------------------------------- one backend


@dataclass
class Result:
    """The counts of one backend's run; ``failures`` lists every violation."""

    backend: str
    kills: int = 0
    requests: int = 0
    acknowledged: int = 0
    acknowledged_emergencies: int = 0
    in_doubt_keyed: int = 0
    in_doubt_unkeyed: int = 0
    in_doubt_unkeyed_stored: int = 0
    resent_made_one: int = 0
    replayed: int = 0
    errors_5xx: int = 0
    reports_in_store: int = 0
    integrity: str = ""
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def run_backend(backend: str, database_url: str | None, args: argparse.Namespace) -> Result:
    """Set up a fresh store, kill the server ``args.kills`` times, then verify."""
    result = Result(backend)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="geo_router_kill_") as tmp:
        folder = Path(tmp)
        secrets_file = folder / "secrets.json"
        write_new_secrets_file(secrets_file)
        env = {
            **os.environ,
            "GEO_ROUTER_CITY": str(DEMO_CITY_PROFILE),
            "GEO_ROUTER_DATA_DIR": str(folder / "data"),
            "GEO_ROUTER_SECRETS_FILE": str(secrets_file),
            "GEO_ROUTER_HOST": HOST,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }
        env.pop("GEO_ROUTER_DATABASE_URL", None)
        if database_url is not None:
            env["GEO_ROUTER_DATABASE_URL"] = database_url
        store_url = database_url or f"sqlite:///{folder / 'data' / 'geo_router.sqlite3'}"
        (folder / "data").mkdir()
        with Store.from_url(store_url) as store:
            token, _ = store.keys.create("intake", "kill-durability", channel="call")
        point = _inside_point()
        ledger = Ledger()
        log = folder / "server.log"
        rng = random.Random(args.seed)
        for kill in range(args.kills):
            port, process = start_server(env, args.workers, log)
            wait_ready(port, process, log)
            stop = threading.Event()
            clients = [
                threading.Thread(
                    target=stream,
                    args=(port, token, point, ledger, stop, args.seed * 1000 + kill * 50 + i),
                    daemon=True,
                )
                for i in range(args.clients)
            ]
            for client in clients:
                client.start()
            time.sleep(rng.uniform(args.min_delay, args.max_delay))  # a random moment
            kill_group(process)
            stop.set()
            for client in clients:
                client.join(timeout=60)
            result.kills += 1
            if (kill + 1) % 10 == 0 or kill + 1 == args.kills:
                print(
                    f"  {backend}: {kill + 1}/{args.kills} kills, {len(ledger.sent)} requests",
                    flush=True,
                )
        port, process = start_server(env, args.workers, log)
        try:
            wait_ready(port, process, log)
            _resend_in_doubt(port, token, ledger, result)
            _replay_some(port, token, ledger, result, rng)
        finally:
            kill_group(process)
        _verify(store_url, ledger, result)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _inside_point() -> tuple[float, float]:
    """A point well inside the demo city's first kelurahan."""
    import geopandas as gpd

    frame = gpd.read_file(DEMO_CITY_PROFILE.parent / "kelurahan.geojson")
    point = frame.geometry.iloc[0].representative_point()
    return float(point.x), float(point.y)


def _resend_in_doubt(port: int, token: str, ledger: Ledger, result: Result) -> None:
    """Re-send every in-doubt keyed request with its key: each must answer 2xx with an id."""
    for item in ledger.sent:
        if item.status is not None or item.key is None:
            continue
        result.in_doubt_keyed += 1
        status, answer = post_report(port, token, item.body, item.key)
        item.status, item.resent = status, True
        if 200 <= status < 300 and answer.get("id"):
            item.report_id = answer["id"]
        else:
            result.failures.append(f"in-doubt key {item.key} re-sent: {status} {str(answer)[:200]}")


def _replay_some(port: int, token: str, ledger: Ledger, result: Result, rng: random.Random) -> None:
    """Acknowledged keys still replay: the same key and body answer the same id."""
    keyed = [s for s in ledger.sent if s.key is not None and s.report_id is not None]
    for item in rng.sample(keyed, min(50, len(keyed))):
        status, answer = post_report(port, token, item.body, item.key)
        if answer.get("id") != item.report_id:
            result.failures.append(
                f"key {item.key} replayed {status} {answer.get('id')} != {item.report_id}"
            )
        else:
            result.replayed += 1


def _verify(store_url: str, ledger: Ledger, result: Result) -> None:
    """Every acknowledged report present once and intact; the database sound."""
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT r.id, r.category, r.channel, r.description, r.lon, r.lat, "
                    "(SELECT count(*) FROM report_updates u WHERE u.report_id = r.id "
                    " AND u.from_status IS NULL) AS created FROM reports r"
                )
            ).all()
            result.integrity = _integrity(conn)
    finally:
        engine.dispose()
    result.reports_in_store = len(rows)
    by_description: dict[str, list[Any]] = {}
    for row in rows:
        by_description.setdefault(row.description, []).append(row)
    result.requests = len(ledger.sent)
    for item in ledger.sent:
        found = by_description.get(item.body["description"], [])
        if item.status is None:  # in doubt, no key: it may have been stored, at most once
            result.in_doubt_unkeyed += 1
            result.in_doubt_unkeyed_stored += len(found)
            if len(found) > 1:
                result.failures.append(f"in-doubt request stored {len(found)} times")
            continue
        if item.status >= 500:
            result.errors_5xx += 1
            result.failures.append(f"answered {item.status}")
        if not 200 <= item.status < 300:
            continue
        if item.resent:
            result.resent_made_one += _check_stored(item, found, result)
        else:
            result.acknowledged += 1
            result.acknowledged_emergencies += item.emergency
            _check_stored(item, found, result)
    if result.integrity != "ok":
        result.failures.append(f"integrity check: {result.integrity}")


def _check_stored(item: Sent, found: list[Any], result: Result) -> bool:
    """An acknowledged report: exactly one row, the answered id, the fields as sent."""
    if len(found) != 1:
        result.failures.append(f"report {item.report_id} stored {len(found)} times")
        return False
    row = found[0]
    location = item.body["location"]
    intact = (
        row.id == item.report_id
        and row.category == item.body["category"]
        and row.channel == "call"
        and abs(row.lon - location["lon"]) < 1e-9
        and abs(row.lat - location["lat"]) < 1e-9
        and row.created == 1
    )
    if not intact:
        result.failures.append(f"report {item.report_id} not intact: {tuple(row)}")
    return intact


def _integrity(conn: sa.Connection) -> str:
    """SQLite: integrity_check and foreign_key_check; PostgreSQL: orphan rows."""
    if conn.dialect.name == "sqlite":
        check = ", ".join(str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check"))
        orphans = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
        return check if not orphans else f"{check}; {len(orphans)} foreign key violations"
    orphans = conn.execute(
        sa.text(
            "SELECT (SELECT count(*) FROM report_zones z LEFT JOIN reports r ON r.id = z.report_id"
            " WHERE r.id IS NULL) + (SELECT count(*) FROM report_updates u LEFT JOIN reports r"
            " ON r.id = u.report_id WHERE r.id IS NULL) + (SELECT count(*) FROM idempotency_keys k"
            " LEFT JOIN reports r ON r.id = k.report_id WHERE r.id IS NULL)"
        )
    ).scalar_one()
    return "ok" if orphans == 0 else f"{orphans} orphan rows"


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="kills per backend (default 100)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("GEO_ROUTER_TEST_DATABASE_URL"),
        help="PostgreSQL URL (default: GEO_ROUTER_TEST_DATABASE_URL); a schema of its own is used",
    )
    parser.add_argument("--clients", type=int, default=4, help="client threads streaming reports")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers")
    parser.add_argument(
        "--min-delay", type=float, default=0.05, help="earliest kill, s after ready"
    )
    parser.add_argument("--max-delay", type=float, default=1.5, help="latest kill, s after ready")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the counts here")
    return parser.parse_args(argv)


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop servers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    results: list[Result] = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend == "sqlite":
            print(f"-- SQLite: {args.kills} kills", flush=True)
            results.append(run_backend("sqlite", None, args))
        elif backend == "postgres":
            if not args.database_url:
                print("-- PostgreSQL skipped: no --database-url (GEO_ROUTER_TEST_DATABASE_URL)")
                continue
            print(f"-- PostgreSQL: {args.kills} kills", flush=True)
            with scratch_schema(args.database_url) as url:
                results.append(run_backend("postgres", url, args))
        else:
            raise SystemExit(f"unknown backend {backend!r}: use sqlite, postgres")
        _report(results[-1:])  # each backend's counts as soon as they are known
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.failures for r in results) else 0


def _report(results: list[Result]) -> None:
    columns = [
        "backend", "kills", "requests", "acknowledged", "acknowledged_emergencies",
        "in_doubt_keyed", "resent_made_one", "in_doubt_unkeyed", "in_doubt_unkeyed_stored",
        "replayed", "errors_5xx", "reports_in_store", "integrity", "seconds",
    ]  # fmt: skip
    for r in results:
        print(f"\n{r.backend}:")
        for name in columns[1:]:
            print(f"  {name:26} {getattr(r, name)}")
        verdict = "PASS" if not r.failures else f"FAIL ({len(r.failures)} violations)"
        print(f"  {'verdict':26} {verdict}")
        for failure in r.failures[:20]:
            print(f"    - {failure}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
