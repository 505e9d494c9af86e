"""ReportsRepo: the report tables on SQLite and PostgreSQL, as typed records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from geo_router.errors import InputError
from geo_router.store.reports_repo import (
    IdempotencyEntry,
    ImportedReports,
    NuisanceRecord,
    Report,
    ReportQuery,
    ReportsRepo,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def repo(migrated_engine: Any) -> ReportsRepo:
    return ReportsRepo(migrated_engine)


def _report(report_id: str, **changes: object) -> Report:
    values: dict[str, object] = {
        "id": report_id,
        "channel": "call",
        "category": "waste",
        "description": None,
        "status": "open",
        "resolution": None,
        "lon": 107.6,
        "lat": -6.9,
        "location_source": "given",
        "location_confidence": 1.0,
        "reporter_phone_hash": None,
        "reporter_phone_enc": None,
        "media_url": None,
        "decision": {"agency": "DLH", "category": {"emergency": False}},
        "zones": {"kelurahan": "K1", "kecamatan": "C1"},
        "flags": [],
        "api_key_id": "k-call",
        "created_at": T0,
        "updated_at": T0,
        "closed_at": None,
    }
    values.update(changes)
    return Report(**values)  # type: ignore[arg-type]


def test_insert_get_and_round_trip(repo: ReportsRepo) -> None:
    report = _report("r_1", reporter_phone_hash="h1", reporter_phone_enc="token")
    assert repo.insert(report, actor="k-call/desk") is True
    assert repo.get("r_1") == report
    assert repo.get("r_1", channel_scope="sms") is None  # another channel's report
    assert repo.get("r_nope") is None
    assert Report.from_dict(report.to_dict()) == report
    assert "reporter_phone_hash" not in report.to_dict(include_private=False)
    [created] = repo.history("r_1")
    assert (created.from_status, created.to_status, created.actor) == (None, "open", "k-call/desk")


def test_page_filters_and_counts(repo: ReportsRepo) -> None:
    for i, (channel, category, zone) in enumerate(
        [("call", "waste", "K1"), ("sms", "fire", "K1"), ("call", "fire", "K2")]
    ):
        zones = {"kelurahan": zone}
        at = T0 + timedelta(minutes=i)
        repo.insert(
            _report(f"r_{i}", channel=channel, category=category, zones=zones, created_at=at),
            actor="x",
        )

    def ids(query: ReportQuery, scope: str | None = None) -> tuple[list[str], int]:
        items, total = repo.page(query, channel_scope=scope)
        return [r.id for r in items], total

    assert ids(ReportQuery()) == (["r_2", "r_1", "r_0"], 3)  # newest first
    assert ids(ReportQuery(zone=("kelurahan", "K1"))) == (["r_1", "r_0"], 2)
    assert ids(ReportQuery(category="fire", channel="call")) == (["r_2"], 1)
    assert ids(ReportQuery(statuses=("closed",))) == ([], 0)
    assert ids(ReportQuery(ids=("r_0", "r_2", "r_x"))) == (["r_2", "r_0"], 2)
    assert ids(ReportQuery(created_from=T0 + timedelta(minutes=1))) == (["r_2", "r_1"], 2)
    assert ids(ReportQuery(bbox=(107.5, -7.0, 107.7, -6.8))) == (["r_2", "r_1", "r_0"], 3)
    assert ids(ReportQuery(bbox=(0.0, 0.0, 1.0, 1.0))) == ([], 0)
    assert ids(ReportQuery(limit=1, offset=1)) == (["r_1"], 3)
    assert ids(ReportQuery(), scope="sms") == (["r_1"], 1)
    assert repo.has_geom_column() is (repo.engine.dialect.name == "postgresql")


def test_idempotency_replay_and_race(repo: ReportsRepo) -> None:
    entry = IdempotencyEntry("key-1", "k-call", "hash-a", expired_before=T0 - timedelta(days=1))
    first = _report("r_1")
    assert repo.insert(first, actor="x", idempotency=entry)
    stored = repo.replay("key-1", "k-call", since=T0 - timedelta(hours=1))
    assert stored is not None and (stored.request_hash, stored.report) == ("hash-a", first)
    assert repo.replay("key-1", "k-other", since=T0 - timedelta(hours=1)) is None
    assert repo.replay("key-1", "k-call", since=T0 + timedelta(hours=1)) is None  # expired
    # The same key recorded concurrently: nothing of the second report is written.
    assert repo.insert(_report("r_2"), actor="x", idempotency=entry) is False
    assert repo.get("r_2") is None and repo.history("r_2") == []


def test_change_status_checks_with_the_row_locked(repo: ReportsRepo) -> None:
    repo.insert(_report("r_1"), actor="x")
    seen: list[str] = []

    def allow(current: str) -> None:
        seen.append(current)

    def refuse(current: str) -> None:
        raise InputError(f"not from {current}")

    at = T0 + timedelta(hours=1)
    done = repo.change_status(
        "r_1", "closed", resolution="prank", note="n", actor="a", at=at, check=allow
    )
    assert done and seen == ["open"]
    closed = repo.get("r_1")
    assert closed is not None and (closed.status, closed.resolution, closed.closed_at) == (
        "closed",
        "prank",
        at,
    )
    with pytest.raises(InputError, match="not from closed"):
        repo.change_status(
            "r_1", "open", resolution=None, note=None, actor="a", at=at, check=refuse
        )
    assert not repo.change_status(
        "r_1",
        "open",
        resolution=None,
        note=None,
        actor="a",
        at=at,
        check=allow,
        channel_scope="sms",
    )
    assert [c.to_status for c in repo.history("r_1")] == ["open", "closed"]


def test_nuisance_and_recent_times(repo: ReportsRepo) -> None:
    for i, resolution in enumerate(["prank", "resolved", None]):
        status = "closed" if resolution else "open"
        at = T0 + timedelta(minutes=10 * i)
        report = _report(
            f"r_{i}", reporter_phone_hash="h1", status=status, resolution=resolution, created_at=at
        )
        repo.insert(report, actor="x")
    assert repo.nuisance("h1") == NuisanceRecord(3, 1, T0 + timedelta(minutes=20))
    assert repo.nuisance("h2") == NuisanceRecord(0, 0, None)
    since = T0 + timedelta(minutes=5)
    assert repo.recent_times("h1", since=since, limit=5) == [
        T0 + timedelta(minutes=20),
        T0 + timedelta(minutes=10),
    ]
    assert repo.recent_times("h1", since=since, limit=1) == [T0 + timedelta(minutes=20)]


def test_insert_imported(repo: ReportsRepo) -> None:
    chunk = ImportedReports(
        ids=["r_a", "r_b"],
        category=["waste", "Graffiti"],
        description=["one", None],
        lon=[107.6, None],
        lat=[-6.9, None],
        decision=[orjson.dumps({"source": "import"}).decode()] * 2,
        flags=["[]", orjson.dumps(["invalid_coordinates"]).decode()],
        created_at=[T0, T0 + timedelta(seconds=1)],
        updated_at=T0 + timedelta(days=1),
        zones=[("r_a", "kelurahan", "K1")],
    )
    repo.insert_imported(chunk, channel="import", status="closed")
    a, b = repo.get("r_a"), repo.get("r_b")
    assert a is not None and b is not None
    assert (a.channel, a.status, a.location_source, a.zones) == (
        "import",
        "closed",
        "imported",
        {"kelurahan": "K1"},
    )
    assert a.decision == {"source": "import"} and a.updated_at == T0 + timedelta(days=1)
    assert (b.lon, b.flags, b.zones) == (None, ["invalid_coordinates"], {})
