"""Emergencies are never refused: the API through database outages, SQLite and PostgreSQL.

Real failures, not mocks, where the machine allows: SQLite's own "database or disk is full"
(``PRAGMA max_page_count``), a SQLite data folder that disappears, and a PostgreSQL server cut
off behind a proxy (the machine's server is shared and never stopped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from api.app import create_app
from api.settings import AppSettings
from geo_router.errors import StoreUnavailableError
from geo_router.intake.secrets import Secrets
from geo_router.store import Store, make_engine
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.schema import idempotency_keys, reports

PROBLEM = "application/problem+json"


def _app(settings: AppSettings, router: Any, secrets: Secrets | None = None) -> FastAPI:
    extra: dict[str, Any] = {}
    if secrets is not None:
        extra["secrets_loader"] = lambda _s: secrets
    return create_app(settings, city_loader=lambda _s: (router, None), **extra)


def _intake_key(url: str) -> dict[str, str]:
    with Store.from_url(url) as store:
        key, _ = store.keys.create("intake", "call-center", channel="call")
    return {"Authorization": f"Bearer {key}"}


def _body(router: Any, category: str = "fire", **extra: Any) -> dict[str, Any]:
    point = router.snapshot.layers["kelurahan"].geometries[0].representative_point()
    return {
        "category": category,
        "description": "outage drill",
        "location": {"lon": point.x, "lat": point.y},
        **extra,
    }


def _wait_until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _drained(app: FastAPI) -> bool:
    return not app.state.journal.has_pending()


def _stored_counts(url: str, ids: list[str]) -> dict[str, int]:
    engine = make_engine(url)
    try:
        query = (
            sa.select(reports.c.id, sa.func.count())
            .where(reports.c.id.in_(ids))
            .group_by(reports.c.id)
        )
        with engine.connect() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}
    finally:
        engine.dispose()


def _fill_disk(engine: sa.Engine, full: dict[str, bool]) -> None:
    """New connections of ``engine`` see a full disk while ``full['on']`` (SQLite's own
    SQLITE_FULL: the file may not grow by one page)."""

    @event.listens_for(engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        if full["on"]:
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count={pages}")


def test_sqlite_disk_full_emergencies_journaled_then_stored_exactly_once(
    demo_router: Any, tmp_path: Path
) -> None:
    settings = AppSettings.of(data_dir=tmp_path, journal_replay_interval_s=0.1, _env_file=None)
    headers = _intake_key(settings.store.effective_database_url)
    app = _app(settings, demo_router)
    full = {"on": False}
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60)
        _fill_disk(app.state.store.engine, full)
        full["on"] = True
        app.state.store.engine.dispose()

        answers: dict[str, dict[str, Any]] = {}
        for i in range(12):
            r = client.post(
                "/v1/reports",
                json=_body(demo_router, description=f"fire {i}"),
                headers={**headers, "Idempotency-Key": f"fire-{i}"},
            )
            assert r.status_code in (201, 202), r.text
            answers[f"fire-{i}"] = r.json()
        pending = [k for k, v in answers.items() if v["status"] == "pending_store"]
        assert len(pending) >= 10  # the disk was full for (nearly) all of them
        key = pending[0]
        r = client.post(
            "/v1/reports",
            json=_body(demo_router, description=f"fire {key[5:]}"),
            headers={**headers, "Idempotency-Key": key},
        )
        assert r.status_code == 202 and r.json()["id"] == answers[key]["id"]  # not twice
        assert r.headers["location"] == f"/v1/reports/{answers[key]['id']}"
        conflict = client.post(
            "/v1/reports", json=_body(demo_router), headers={**headers, "Idempotency-Key": key}
        )
        assert conflict.status_code == 422  # same key, another body: still refused

        # A small report may still fit in a page's free space; soon none does.
        for _ in range(10):
            waste = client.post("/v1/reports", json=_body(demo_router, "waste"), headers=headers)
            assert waste.status_code in (201, 503), waste.text
            if waste.status_code == 503:
                break
        assert waste.status_code == 503 and int(waste.headers["retry-after"]) >= 1
        assert waste.headers["content-type"].startswith(PROBLEM)
        assert "disk full" in waste.json()["detail"]

        shown = client.get(f"/v1/reports/{answers[key]['id']}", headers=headers)
        assert shown.status_code == 200 and shown.json()["status"] == "pending_store"
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["journal_pending"] == len(pending)

        full["on"] = False  # space again
        app.state.store.engine.dispose()
        _wait_until(lambda: _drained(app), "the replay")
        assert client.get("/readyz").json()["status"] == "ready"
        shown = client.get(f"/v1/reports/{answers[key]['id']}", headers=headers)
        assert shown.status_code == 200 and shown.json()["status"] == "open"
        again = client.post(
            "/v1/reports",
            json=_body(demo_router, description=f"fire {key[5:]}"),
            headers={**headers, "Idempotency-Key": key},
        )
        assert again.status_code == 201 and again.json()["id"] == answers[key]["id"]
    ids = [v["id"] for v in answers.values()]
    counts = _stored_counts(settings.store.effective_database_url, ids)
    assert counts == dict.fromkeys(ids, 1)


def test_sqlite_data_folder_gone_routing_keeps_working_and_emergencies_pass(
    demo_router: Any, tmp_path: Path
) -> None:
    db_dir = tmp_path / "db"
    url = f"sqlite:///{db_dir / 'geo.sqlite3'}"
    settings = AppSettings.of(
        data_dir=tmp_path / "data",
        database_url=url,
        journal_replay_interval_s=0.1,
        key_cache_ttl_s=0.2,
        _env_file=None,
    )
    headers = _intake_key(url)
    app = _app(settings, demo_router)
    route = {"lon": 107.6, "lat": -6.9}
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60)
        assert client.get("/v1/route", params=route, headers=headers).status_code == 200
        app.state.store.engine.dispose()
        db_dir.rename(tmp_path / "db-away")  # unmounted, deleted: a real failure
        db_dir.write_text("not a folder")
        time.sleep(0.3)  # the cached key is older than its TTL: the database is asked

        assert client.get("/livez").status_code == 200
        r = client.get("/v1/route", params=route, headers=headers)
        assert r.status_code == 200, r.text  # routing from memory, key from the cache
        listing = client.get("/v1/reports", headers=headers)
        assert listing.status_code == 503 and listing.headers["content-type"].startswith(PROBLEM)
        assert "unavailable" in listing.json()["detail"]
        emergency = client.post("/v1/reports", json=_body(demo_router), headers=headers)
        assert emergency.status_code == 202 and emergency.json()["status"] == "pending_store"
        report_id = emergency.json()["id"]
        shown = client.get(f"/v1/reports/{report_id}", headers=headers)
        assert shown.status_code == 200 and shown.json()["status"] == "pending_store"
        waste = client.post("/v1/reports", json=_body(demo_router, "waste"), headers=headers)
        assert waste.status_code == 503 and "retry-after" in waste.headers
        point = _body(demo_router)["location"]
        form = {
            "api_key": headers["Authorization"].removeprefix("Bearer "),
            "service_code": "flooding",
            "lat": repr(point["lat"]),
            "long": repr(point["lon"]),
        }
        open311 = client.post("/open311/v2/requests.json", data=form)
        assert open311.status_code == 200, open311.text
        (answer,) = open311.json()
        assert "database was unavailable" in answer["service_notice"]
        taken = client.get(f"/v1/reports/{answer['service_request_id']}", headers=headers)
        assert taken.json()["status"] == "pending_store"
        public = client.get(f"/open311/v2/requests/{answer['service_request_id']}.json")
        assert public.status_code == 404  # emergencies stay off the public feed, as ever
        refused = client.post("/open311/v2/requests.json", data={**form, "service_code": "noise"})
        assert refused.status_code == 503 and "retry-after" in refused.headers
        phone_only = {"category": "crime", "reporter_phone": "0812-1111-2222"}
        unlocated = client.post("/v1/reports", json=phone_only, headers=headers)
        assert unlocated.status_code == 202, unlocated.text  # only the registry could locate it
        assert unlocated.json()["decision"]["agency"]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded" and ready.json()["store"] == "unavailable"

        db_dir.unlink()
        (tmp_path / "db-away").rename(db_dir)
        _wait_until(lambda: _drained(app), "the replay")
        assert client.get(f"/v1/reports/{report_id}", headers=headers).json()["status"] == "open"
        assert client.get("/readyz").json()["status"] == "ready"
        late = client.get(f"/v1/reports/{unlocated.json()['id']}", headers=headers).json()
        assert late["status"] == "open" and "unregistered_caller" in late["flags"]
    ids = [report_id, unlocated.json()["id"], answer["service_request_id"]]
    assert _stored_counts(url, ids) == dict.fromkeys(ids, 1)


def test_a_restart_replays_what_the_last_run_journaled(
    demo_router: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = AppSettings.of(data_dir=tmp_path, _env_file=None)
    url = settings.store.effective_database_url
    headers = _intake_key(url)

    def disk_full(*_args: Any, **_kwargs: Any) -> bool:
        raise StoreUnavailableError("the database is unavailable (disk full)")

    with monkeypatch.context() as patch:
        patch.setattr(ReportsRepo, "insert", disk_full)
        first = _app(settings, demo_router)
        with TestClient(first) as client:
            assert first.state.ready_event.wait(60)
            r = client.post("/v1/reports", json=_body(demo_router, "medical"), headers=headers)
            assert r.status_code == 202
            report_id = r.json()["id"]
    assert _stored_counts(url, [report_id]) == {}
    second = _app(settings, demo_router)  # the worker restarts with the store writable again
    with TestClient(second) as client:
        assert second.state.ready_event.wait(60)  # its city loads beside the replay
        _wait_until(lambda: _drained(second), "the replay at start")
        shown = client.get(f"/v1/reports/{report_id}", headers=headers)
        assert shown.status_code == 200 and shown.json()["status"] == "open"
        assert shown.json()["category"] == "medical"
    third = _app(settings, demo_router)  # and once more: nothing is replayed twice
    with TestClient(third):
        assert not third.state.journal.has_pending()
    assert _stored_counts(url, [report_id]) == {report_id: 1}


@pytest.mark.postgres
def test_postgres_down_emergency_stream_all_answered_then_stored_once_after_restart(
    demo_router: Any, tmp_path: Path, postgres_proxy_url: tuple[str, Any], database_url: str
) -> None:
    url, proxy = postgres_proxy_url
    secrets = Secrets.generate()
    settings = AppSettings.of(
        data_dir=tmp_path,
        database_url=url,
        journal_replay_interval_s=0.1,
        key_cache_ttl_s=0.2,
        _env_file=None,
    )
    headers = _intake_key(url)
    unused = _intake_key(url)  # never used before the cut: known from the warm cache
    route = {"lon": 107.6, "lat": -6.9}
    answers: dict[str, str] = {}
    first = _app(settings, demo_router, secrets)
    with TestClient(first) as client:
        assert first.state.ready_event.wait(60)
        assert client.get("/v1/route", params=route, headers=headers).status_code == 200
        before = client.post("/v1/reports", json=_body(demo_router), headers=headers)
        assert before.status_code == 201
        proxy.down()
        time.sleep(0.3)
        assert client.get("/v1/route", params=route, headers=headers).status_code == 200
        for i in range(20):
            category = ("fire", "crime", "medical", "flooding")[i % 4]
            key = f"stream-{i}"
            for attempt in range(1 + (i % 3 == 0)):  # every third one is sent twice
                r = client.post(
                    "/v1/reports",
                    json=_body(demo_router, category, description=f"stream {i}"),
                    headers={**headers, "Idempotency-Key": key},
                )
                assert r.status_code == 202, r.text
                assert answers.setdefault(key, r.json()["id"]) == r.json()["id"], attempt
            noise = client.post("/v1/reports", json=_body(demo_router, "noise"), headers=headers)
            assert noise.status_code == 503 and "retry-after" in noise.headers
        assert client.get("/v1/reports", headers=headers).status_code == 503
        late = client.post("/v1/reports", json=_body(demo_router, "crime"), headers=unused)
        assert late.status_code == 202
        answers["late"] = late.json()["id"]
        # A refusal's audit record cannot reach the log: the journal keeps it.
        assert client.get("/v1/subscribers").status_code == 401
        assert first.state.audit.flush(30)
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["store"] == "unavailable"
        assert ready.json()["journal_pending"] == 22
    # The worker stops while the server is still down, and starts again once it is back.
    proxy.up()
    second = _app(settings, demo_router, secrets)
    with TestClient(second) as client:
        assert second.state.ready_event.wait(60)  # its city loads beside the replay
        _wait_until(lambda: _drained(second), "the replay at start")
        del answers["late"]  # filed without an Idempotency-Key: checked below by id
        for i, (key, report_id) in enumerate(answers.items()):
            category = ("fire", "crime", "medical", "flooding")[i % 4]
            r = client.post(
                "/v1/reports",
                json=_body(demo_router, category, description=f"stream {i}"),
                headers={**headers, "Idempotency-Key": key},
            )
            assert r.status_code == 201 and r.json()["id"] == report_id  # still exactly one
    ids = [*answers.values(), late.json()["id"]]
    assert _stored_counts(database_url, ids) == dict.fromkeys(ids, 1)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(reports)).scalar_one()
            keys = conn.execute(
                sa.select(sa.func.count()).select_from(idempotency_keys)
            ).scalar_one()
    finally:
        engine.dispose()
    assert total == 22 and keys == 20  # the 21 emergencies and the one filed before
    audit = second.state.audit
    refusals = [
        s.record
        for s in audit.export()
        if s.record.detail.get("route") == "GET /v1/subscribers" and s.record.key_id is None
    ]
    assert len(refusals) == 1 and refusals[0].action == "auth_failure"  # chained once
    check = audit.verify()
    assert check.intact, check.reason
