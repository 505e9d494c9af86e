"""No phone number, name or street address reaches the database files, a dump, or the logs.

Registers callers (several phone formats, street addresses) through every write path, then
scans the raw SQLite file and its WAL (or a pg_dump of the test schema) and the DEBUG log
(SQLAlchemy logs statements and parameters at that level) for any form of the numbers.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from geo_router.intake.phones import normalize_phone
from geo_router.intake.secrets import Secrets
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.store import Store
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.subscribers_repo import SubscribersRepo

PEOPLE = [  # phone as typed, name, street address
    ("+62 812-9375-4826", "Wayan Sudarta", "Jalan Merdeka 17"),
    ("081347261958", "Rina Kusumawati", "Gang Kenari IV 3"),
    ("6285719283746", "Hendra Gunawan", "Jalan Pasirkaliki 221"),
]
IMPORTED = ("0813 5792 4681", "Dewi Lestari", "Jalan Cihampelas 88")
MOVED_TO = "Jalan Braga 45"


def _needles() -> list[bytes]:
    """Every form of the secrets: digit runs of >= 8 of national and E.164 forms, texts."""
    out: set[str] = set()
    for typed, name, address in [*PEOPLE, IMPORTED]:
        e164 = normalize_phone(typed)
        national = "0" + e164[3:]
        for form in (e164[1:], national):
            for size in range(8, len(form) + 1):
                out.update(form[i : i + size] for i in range(len(form) - size + 1))
        out.update({typed, e164, name, address, address.split()[1], name.split()[0]})
    out.update({MOVED_TO, "Braga"})
    return sorted(x.encode() for x in out)


def _whole_numbers() -> list[bytes]:
    """National significant numbers (11 digits): looked for with separators removed too."""
    return [normalize_phone(p[0])[3:].encode() for p in [*PEOPLE, IMPORTED]]


def _leaks(blob: bytes) -> list[bytes]:
    found = [n for n in _needles() if n in blob]
    # "0812-9375-4826" has no 8-digit run; without separators it does. Only whole numbers
    # are searched there: short runs would match digits of joined-up floats by chance.
    joined = re.sub(rb"[\s\-.()+/]", b"", blob)
    return found + [n for n in _whole_numbers() if n in joined]


class StreetGeocoder:
    """Geocodes every street address to the same interior point."""

    def __init__(self, lon: float, lat: float) -> None:
        self.lon, self.lat = lon, lat

    def geocode(self, text: str) -> Any:
        from types import SimpleNamespace

        best = SimpleNamespace(lon=self.lon, lat=self.lat, confidence=0.9, label="street")
        return SimpleNamespace(matched=True, best=best, candidates=[best])


def _register_everyone(store: Store, demo_router: Any) -> None:
    layer = demo_router.snapshot.layers["kelurahan"]
    points = [
        (g.representative_point().x, g.representative_point().y) for g in layer.geometries[:2]
    ]
    registry = SubscriberService(
        SubscribersRepo(store.engine),
        ReportsRepo(store.engine),
        Secrets.generate(),
        lambda: demo_router,
        StreetGeocoder(*points[1]),
    )
    (lon, lat) = points[0]
    ids = []
    ids.append(
        registry.create(PEOPLE[0][0], name=PEOPLE[0][1], address=PEOPLE[0][2], lon=lon, lat=lat).id
    )
    ids.append(registry.create(PEOPLE[1][0], name=PEOPLE[1][1], address=PEOPLE[1][2]).id)
    ids.append(registry.create(PEOPLE[2][0], name=PEOPLE[2][1], address=PEOPLE[2][2]).id)
    phone, name, address = IMPORTED
    summary = registry.import_csv(
        f'phone,name,address,lon,lat\n"{phone}",{name},{address},,\n'.encode()
    )
    assert summary.created == 1, summary.errors
    registry.update(ids[1], address=MOVED_TO)
    for typed, *_ in PEOPLE:
        assert registry.caller(typed).registered
        assert registry.get_by_phone(typed) is not None
    with pytest.raises(Exception):  # noqa: B017 - a duplicate, whatever its class
        registry.create(PEOPLE[0][0].replace(" ", ""), lon=lon, lat=lat)


def _sqlite_bytes(url: str) -> bytes:
    path = Path(make_url(url).database or "")
    blob = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return blob + (wal.read_bytes() if wal.exists() else b"")


def _postgres_bytes(url: str, engine: sa.Engine) -> bytes:
    parsed = make_url(url)
    schema = url.split("search_path%3D")[1].split(",")[0]
    pg_dump = shutil.which("pg_dump")
    if pg_dump:
        done = subprocess.run(
            [
                pg_dump,
                "-h",
                parsed.host or "127.0.0.1",
                "-p",
                str(parsed.port or 5432),
                "-U",
                parsed.username or "postgres",
                "-n",
                schema,
                parsed.database or "postgres",
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode == 0:
            assert b"subscribers" in done.stdout
            return done.stdout
    with engine.connect() as conn:  # no pg_dump: every row of every table as text
        tables = sa.inspect(conn).get_table_names()
        texts = [
            str(row[0])
            for table in tables
            for row in conn.execute(sa.text(f'SELECT t::text FROM "{table}" t'))
        ]
    return "\n".join(texts).encode()


def test_nothing_personal_at_rest_or_in_logs(
    database_url: str, demo_router: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = Store.from_url(database_url)
    try:
        _register_everyone(store, demo_router)
        if store.dialect == "sqlite":
            wal = Path(make_url(database_url).database or "").with_name("test.sqlite3-wal")
            assert wal.exists() and wal.stat().st_size > 0  # the WAL really is scanned
            raw = _sqlite_bytes(database_url)
        else:
            raw = _postgres_bytes(database_url, store.engine)
        assert len(raw) > 10_000
        assert _leaks(raw) == []
    finally:
        store.close()
    if store.dialect == "sqlite":
        assert _leaks(_sqlite_bytes(database_url)) == []  # after the checkpoint on close
    assert "subscribers" in caplog.text  # SQL was logged, with its parameters
    assert _leaks(caplog.text.encode()) == []


def test_needles_do_catch_plaintext() -> None:
    """The scanner itself finds a number in any of its forms."""
    assert _leaks(b"xx 0812-9375-4826 yy") != []
    assert _leaks(b"(0813) 4726.1958") != []
    assert _leaks(b"..81293754..") != []
    assert _leaks(b"6281347261958") != []
    assert _leaks(b"jalan merdeka") == [] and _leaks(b"Jalan Merdeka 17") != []


# --- Medium 10: a registered caller's home is not readable from the database alone


def _home_needles(lon: float, lat: float) -> tuple[list[str], list[bytes]]:
    """Texts of a point (as JSON or SQL would print it, and to 5 decimals, ~1 m) and the
    8-byte doubles SQLite stores a REAL as."""
    import struct

    texts = [repr(lon), repr(lat), f"{lon:.5f}", f"{lat:.5f}"]
    doubles = [struct.pack(">d", v) for v in (lon, lat)] + [
        struct.pack("<d", v) for v in (lon, lat)
    ]
    return texts, doubles


def _every_value(engine: sa.Engine) -> str:
    """Every value of every row of every table, as text."""
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        parts = []
        for table in tables:
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_no_home_point_at_rest(database_url: str, demo_router: Any) -> None:
    """A subscriber's home and a report located at it leave no plaintext point in any row
    (nor, on SQLite, anywhere in the file); their zones stay queryable."""
    from geo_router.intake.locate import Locator
    from geo_router.intake.reports.models import ReportFilters, ServiceActor
    from geo_router.intake.reports.service import ReportService

    point = demo_router.snapshot.layers["kelurahan"].geometries[3].representative_point()
    lon, lat = float(point.x) + 1.234567e-4, float(point.y) - 7.654321e-4
    secrets = Secrets.generate()
    store = Store.from_url(database_url)
    try:
        engine = store.engine
        registry = SubscriberService(
            SubscribersRepo(engine), ReportsRepo(engine), secrets, lambda: demo_router
        )
        registry.create(PEOPLE[0][0], name=PEOPLE[0][1], lon=lon, lat=lat)
        intake = ReportService(
            ReportsRepo(engine), Locator(SubscribersRepo(engine), None), demo_router, secrets
        )
        actor = ServiceActor(id="k-call", name="call", role="intake", channel="call")
        body = {"category": "waste", "reporter_phone": PEOPLE[0][0]}
        report = intake.create(body, actor=actor, idempotency_key="retry-1")
        assert report.location_source == "registered_caller"
        assert (report.lon, report.lat) == (lon, lat)  # the service still knows the home
        assert intake.create(body, actor=actor, idempotency_key="retry-1").id == report.id
        kelurahan = report.zones["kelurahan"]
        page = intake.list(ReportFilters.parse(zone=f"kelurahan:{kelurahan}"), actor=actor)
        assert [r.id for r in page.items] == [report.id]  # counted by zone
        texts, doubles = _home_needles(lon, lat)
        rows = _every_value(engine)
        assert kelurahan in rows
        assert [t for t in texts if t in rows] == []
        if store.dialect == "sqlite":
            raw = _sqlite_bytes(database_url)
            assert [d for d in doubles if d in raw] == []
            assert [t for t in texts if t.encode() in raw] == []
        caller = registry.caller(PEOPLE[0][0])
        assert caller.location is not None and (caller.location.lon, caller.location.lat) == (
            lon,
            lat,
        )
    finally:
        store.close()
