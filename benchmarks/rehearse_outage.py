"""Rehearse a database outage on a real server: every emergency answered, each stored once.

Starts ``geo-router serve`` (demo city, a fresh schema of the given PostgreSQL database, with
generated secrets) behind a TCP proxy that this script owns, so the database itself is never
stopped. It sends a stream of emergency reports at a fixed rate, each with its own
Idempotency-Key and retried like a client would on a network error, plus a ``GET /v1/route``
now and then. A third of the way in, it cuts the proxy for ``--outage`` seconds. Then it checks:
- every emergency was answered 2xx: 201 stored, or 202 journaled as ``pending_store``;
- routing answered 200 throughout;
- ``/readyz`` said ``degraded`` during the cut and ``ready`` after it;
- the journal drained, and every answered id is in the database exactly once, with its key.

It prints the counts and the time the replay took, and exits 1 on any failure. Run from the
repository root (``GEO_ROUTER_TEST_DATABASE_URL`` or ``--database-url`` names the database)::

    python benchmarks/rehearse_outage.py                      # 60 s, 20 s cut, 20 reports/s
    python benchmarks/rehearse_outage.py --short              # CI: 9 s, 3 s cut
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
EMERGENCIES = ("fire", "crime", "medical", "flooding")
POINT = {"lon": 107.6, "lat": -6.9}


class TcpProxy:
    """A TCP proxy to a server that can be cut (an outage) and restored, on one port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = int(probe.getsockname()[1])
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    @property
    def is_up(self) -> bool:
        """Whether connections pass."""
        return self._listener is not None

    def up(self) -> None:
        """Accept connections again (the server is back)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut every open one (the server is gone)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for sock in (client, server):  # no Nagle delays on top of the database's own
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _with_schema(url: sa.URL, schema: str) -> str:
    options = f"-csearch_path={schema},public"
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def _geo_router(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "geo_router", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited during startup")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"{base}/readyz not ready within {timeout_s:.0f} s")


def _file(client: httpx.Client, i: int, tries: int = 3) -> tuple[int, str | None]:
    """File emergency ``i`` as a client would: retry a network error with the same key."""
    body = {"category": EMERGENCIES[i % 4], "description": f"drill {i}", "location": POINT}
    headers = {"Idempotency-Key": f"drill-{i}"}
    status = 0
    for _ in range(tries):
        try:
            r = client.post("/v1/reports", json=body, headers=headers)
        except httpx.HTTPError:
            continue
        status = r.status_code
        if status in (201, 202):
            return status, str(r.json()["id"])
    return status, None


@dataclass
class Drill:
    """What the stream saw: answers by status, ids by key, probe results, replay timing."""

    statuses: Counter[int] = field(default_factory=Counter)
    answered: dict[str, str] = field(default_factory=dict)
    checks: Counter[str] = field(default_factory=Counter)
    restored: float = 0.0  #: when the database came back (monotonic)
    drained: float | None = None  #: when /readyz first said ready again, journal empty

    def probe_ready(self, client: httpx.Client) -> str:
        """``/readyz``'s status; notes when the journal is drained after the cut."""
        ready = client.get("/readyz").json()
        if self.restored and self.drained is None and ready["status"] == "ready":
            self.drained = time.monotonic()
        return str(ready["status"])


def _stream(client: httpx.Client, args: argparse.Namespace, proxy: TcpProxy) -> Drill:
    """Send the stream, cutting the proxy a third of the way in."""
    drill = Drill()
    statuses, answered, checks = drill.statuses, drill.answered, drill.checks
    cut_at, restore_at = args.seconds / 3, args.seconds / 3 + args.outage
    start = time.monotonic()
    i = 0
    while (elapsed := time.monotonic() - start) < args.seconds:
        if proxy.is_up and cut_at <= elapsed < restore_at:
            proxy.down()
            print(f"{elapsed:5.1f} s  database cut")
        elif not proxy.is_up and elapsed >= restore_at:
            proxy.up()
            drill.restored = time.monotonic()
            print(f"{elapsed:5.1f} s  database back")
        status, report_id = _file(client, i)
        statuses[status] += 1
        if report_id is not None:
            answered[f"drill-{i}"] = report_id
        if i % 10 == 0:
            route = client.get("/v1/route", params=POINT)
            checks["route 200" if route.status_code == 200 else "route not 200"] += 1
            ready = drill.probe_ready(client)
            outage = cut_at + 1 <= elapsed < restore_at
            checks[f"readyz {ready} during the cut" if outage else f"readyz {ready}"] += 1
        i += 1
        time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
    if not proxy.is_up:
        proxy.up()
        drill.restored = time.monotonic()
    return drill


def _stored(url: str, answered: dict[str, str]) -> tuple[Counter[int], int]:
    """How often each answered id is stored, and how many idempotency keys are recorded."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id, count(*) FROM reports GROUP BY id HAVING id = ANY(:ids)"),
                {"ids": list(answered.values())},
            ).all()
            keys = conn.execute(
                sa.text("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'drill-%'")
            ).scalar_one()
    finally:
        engine.dispose()
    found = {row[0]: int(row[1]) for row in rows}
    return Counter(found.get(i, 0) for i in answered.values()), int(keys)


def rehearse(args: argparse.Namespace) -> bool:
    """Run the drill; True when everything held."""
    url = sa.make_url(args.database_url).set(drivername="postgresql+psycopg")
    schema = f"drill_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    proxy = TcpProxy((url.host or HOST, url.port or 5432))
    proxy.up()
    port = _free_port()
    base = f"http://{HOST}:{port}"
    server: subprocess.Popen[bytes] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="geo_router_drill_") as tmp:
            env = {
                **os.environ,
                "GEO_ROUTER_DATA_DIR": tmp,
                "GEO_ROUTER_DATABASE_URL": _with_schema(
                    url.set(host=HOST, port=proxy.port), schema
                ),
                "GEO_ROUTER_PEPPER": uuid.uuid4().hex,
                "GEO_ROUTER_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                "GEO_ROUTER_JOURNAL_REPLAY_INTERVAL_S": "0.5",
                "PYTHONPATH": str(REPO_ROOT),
            }
            _geo_router(env, "db", "upgrade")
            key = _geo_router(
                env, "keys", "create", "--role", "intake", "--name", "drill", "--channel", "call"
            )
            log = Path(tmp) / "server.log"
            with log.open("wb") as sink:
                server = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "geo_router",
                        "serve",
                        "--port",
                        str(port),
                        "--workers",
                        str(args.workers),
                    ],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            _wait_ready(base, server)
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
                drill = _stream(client, args, proxy)
                deadline = time.monotonic() + 60
                while drill.drained is None and time.monotonic() < deadline:
                    drill.probe_ready(client)
                    time.sleep(0.2)
            copies, keys = _stored(_with_schema(url, schema), drill.answered)
    finally:
        if server is not None and server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        proxy.down()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    statuses, answered, checks = drill.statuses, drill.answered, drill.checks
    sent = sum(statuses.values())
    print(
        f"emergencies sent {sent}: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    )
    print("checks: " + ", ".join(f"{name} x{n}" for name, n in sorted(checks.items())))
    if drill.drained is not None:
        replay_s = drill.drained - drill.restored
        print(f"journal drained, /readyz ready {replay_s:.1f} s after the database came back")
    print(f"stored copies per answered id: {dict(copies)}; idempotency keys: {keys}")
    ok = (
        set(statuses) <= {201, 202}
        and statuses[202] > 0
        and copies == Counter({1: len(answered)})
        and keys == len(answered)
        and checks["route not 200"] == 0
        and checks["readyz degraded during the cut"] > 0
        and drill.drained is not None
    )
    print("PASS" if ok else "FAIL")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the drill; 0 when everything held."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("GEO_ROUTER_TEST_DATABASE_URL"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=20.0, help="emergencies per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--short", action="store_true", help="CI: 9 s with a 3 s cut")
    args = parser.parse_args(argv)
    if args.short:
        args.seconds, args.outage = 9.0, 3.0
    if not args.database_url:
        print("no database: set GEO_ROUTER_TEST_DATABASE_URL or pass --database-url")
        return 2
    return 0 if rehearse(args) else 1


if __name__ == "__main__":
    sys.exit(main())
