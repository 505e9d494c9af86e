"""What the start-up checks of the store cost: SQLite quick_check vs integrity_check, and the
secrets check, on a store of realistic size (issue 10, Medium 12).

    python benchmarks/bench_startup_check.py [--reports 200000] [--subscribers 20000]

Builds the store in a temporary folder (removed afterwards): subscribers with three encrypted
fields each, reports with an encrypted phone, their zones and Idempotency-Key answers, as the
service writes them. Prints the file size and the best of three timings of each check.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from geo_router.intake.secrets import Secrets
from geo_router.store import make_engine, upgrade
from geo_router.store.engine import write_transaction
from geo_router.store.schema import (
    idempotency_keys,
    new_report_id,
    new_token_id,
    report_zones,
    reports,
    subscribers,
    utcnow,
)
from geo_router.store.secrets_check import claim_secrets, quick_check


def _fill(engine: sa.Engine, secrets: Secrets, n_reports: int, n_subscribers: int) -> None:
    now = utcnow()
    phones = [f"+62812{i:07d}" for i in range(max(n_reports, n_subscribers))]
    with write_transaction(engine) as conn:
        rows = [
            {
                "id": new_token_id(),
                "phone_hash": secrets.hash_phone(p),
                "phone_enc": secrets.encrypt(p),
                "name_enc": secrets.encrypt("Nama Lengkap Pelapor"),
                "address_enc": secrets.encrypt("Jalan Merdeka No. 12, RT 03/RW 05"),
                "zones": {"kelurahan": "3273010001"},
                "responders": {},
                "verification_status": "unverified",
                "created_at": now,
                "updated_at": now,
            }
            for p in phones[:n_subscribers]
        ]
        conn.execute(sa.insert(subscribers), rows)
        for start in range(0, n_reports, 20_000):
            chunk = phones[start : start + 20_000]
            ids = [new_report_id() for _ in chunk]
            private = [
                {
                    "reporter_phone_hash": secrets.hash_phone(p),
                    "reporter_phone_enc": secrets.encrypt(p),
                }
                for p in chunk
            ]
            conn.execute(
                sa.insert(reports),
                [
                    {
                        "id": i,
                        "channel": "call",
                        "category": "fire",
                        "description": "asap tebal dari rumah tetangga",
                        "status": "open",
                        "lon": 107.6,
                        "lat": -6.9,
                        "location_source": "given",
                        "decision": {"agency": "damkar", "zones": {"kelurahan": "3273010001"}},
                        "flags": [],
                        "created_at": now,
                        "updated_at": now,
                        **priv,
                    }
                    for i, priv in zip(ids, private, strict=True)
                ],
            )
            conn.execute(
                sa.insert(report_zones),
                [{"report_id": i, "layer": "kelurahan", "zone_id": "3273010001"} for i in ids],
            )
            conn.execute(
                sa.insert(idempotency_keys),
                [
                    {
                        "key": f"k-{i}",
                        "api_key_id": "",
                        "request_hash": "0" * 64,
                        "report_id": i,
                        "response": {"id": i, **priv},
                        "created_at": now,
                    }
                    for i, priv in zip(ids, private, strict=True)
                ],
            )


def _best(run: object, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Build the store, time the checks, print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=200_000)
    parser.add_argument("--subscribers", type=int, default=20_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="geo_router_bench_"))
    try:
        path = folder / "geo_router.sqlite3"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        secrets = Secrets.generate()
        start = time.perf_counter()
        _fill(engine, secrets, args.reports, args.subscribers)
        print(
            f"built {args.reports} reports, {args.subscribers} subscribers "
            f"in {time.perf_counter() - start:.1f} s; file {path.stat().st_size / 1e6:.0f} MB"
        )
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

        def integrity() -> None:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"

        timings = {
            "PRAGMA quick_check": _best(lambda: quick_check(engine)),
            "PRAGMA integrity_check": _best(integrity),
            # the first one decrypts a stored value of every field and records check values
            "secrets check (first)": _best(lambda: claim_secrets(engine, secrets), 1),
            "secrets check (later)": _best(lambda: claim_secrets(engine, secrets)),
        }
        for name, seconds in timings.items():
            print(f"{name:24} {seconds * 1000:8.0f} ms")
        engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
