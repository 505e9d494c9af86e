"""The audit trail through the real app: each audited action writes its record, and a display
read fails closed (503) while an emergency located from the registry is still filed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AppSettings
from geo_router.errors import StoreUnavailableError
from geo_router.intake.audit import AUDIT_KIND
from geo_router.intake.secrets import Secrets
from geo_router.store import Store
from geo_router.store.audit_repo import AuditRecord
from geo_router.store.reports_repo import ReportsRepo

PHONE = "0812-3456-7890"
UNKNOWN = "0813-9999-0000"


@pytest.fixture
def served(database_url: str, demo_router: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = AppSettings.of(
        data_dir=tmp_path,
        database_url=database_url,
        journal_replay_interval_s=3600,  # the tests run the replay loop's rounds themselves
        _env_file=None,
    )
    secrets = Secrets.generate()
    app = create_app(
        settings,
        city_loader=lambda s: (demo_router, None),
        store_opener=lambda s: Store.from_url(database_url),
        secrets_loader=lambda s: secrets,
    )
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        store: Store = app.state.store
        keys, ids = {}, {}
        for role, channel in (("intake", "call"), ("planner", None), ("admin", None)):
            key, record = store.keys.create(role, f"test-{role}", channel=channel)
            keys[role], ids[role] = {"Authorization": f"Bearer {key}"}, record.id
        app.state.auth.refresh()
        point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
        r = client.post(
            "/v1/subscribers",
            json={
                "phone": PHONE,
                "name": "Siti Rahma",
                "address": "Jalan Aceh 12",
                "location": {"lon": point.x, "lat": point.y},
            },
            headers=keys["admin"],
        )
        assert r.status_code == 201, r.text
        yield {
            "client": client,
            "app": app,
            "keys": keys,
            "ids": ids,
            "subscriber": r.json()["id"],
            "point": (point.x, point.y),
        }


def _records(served: dict[str, Any]) -> list[AuditRecord]:
    audit = served["app"].state.audit
    assert audit.flush(30)  # refusals are written by the audit queue's thread
    return [s.record for s in audit.export()]


def _last(served: dict[str, Any]) -> AuditRecord:
    return _records(served)[-1]


def _no_personal_data(records: list[AuditRecord]) -> None:
    text = orjson.dumps([r.to_dict() for r in records]).decode()
    for needle in ("3456", "7890", "9999", "Siti", "Aceh", "62812", "62813"):
        assert needle not in text, needle


def test_caller_lookup_is_audited_with_actor_key_and_purpose(served: dict[str, Any]) -> None:
    client, keys, ids = served["client"], served["keys"], served["ids"]
    r = client.post("/v1/callers/lookup", json={"phone": PHONE}, headers=keys["intake"])
    assert r.status_code == 200 and r.json()["registered"]
    record = _last(served)
    assert (record.action, record.purpose) == ("caller_lookup", "call_taking")
    assert (record.actor, record.key_id) == ("test-intake", ids["intake"])
    assert record.subjects == (f"subscriber:{served['subscriber']}",)
    r = client.post("/v1/callers/lookup", json={"phone": UNKNOWN}, headers=keys["intake"])
    assert r.status_code == 200 and not r.json()["registered"]
    unknown = _last(served)
    assert unknown.subjects[0].startswith("phone_ref:") and unknown.detail["registered"] is False
    _no_personal_data(_records(served))


def test_subscriber_read_and_list_are_audited(served: dict[str, Any]) -> None:
    client, keys, ids = served["client"], served["keys"], served["ids"]
    sub = served["subscriber"]
    assert client.get(f"/v1/subscribers/{sub}", headers=keys["admin"]).status_code == 200
    record = _last(served)
    assert (record.action, record.purpose, record.key_id) == (
        "subscriber_read",
        "registry_admin",
        ids["admin"],
    )
    assert record.subjects == (f"subscriber:{sub}",)
    assert client.get("/v1/subscribers?limit=10", headers=keys["admin"]).status_code == 200
    listed = _last(served)
    assert listed.action == "subscriber_list" and listed.subjects == (f"subscriber:{sub}",)
    assert listed.detail == {"limit": 10, "offset": 0, "total": 1}
    _no_personal_data(_records(served))


def test_authorization_failures_are_audited(served: dict[str, Any]) -> None:
    client, keys, ids = served["client"], served["keys"], served["ids"]
    assert client.get("/v1/subscribers").status_code == 401
    anonymous = _last(served)
    assert (anonymous.action, anonymous.purpose) == ("auth_failure", "access_control")
    assert anonymous.actor == "anonymous" and anonymous.key_id is None
    assert anonymous.detail["status"] == 401 and anonymous.detail["route"] == "GET /v1/subscribers"
    bad = {"Authorization": "Bearer gr_not-a-real-key"}
    assert client.get("/v1/subscribers", headers=bad).status_code == 401
    assert client.get("/v1/subscribers", headers=keys["planner"]).status_code == 403
    denied = _last(served)
    assert denied.key_id == ids["planner"] and denied.detail["status"] == 403
    assert denied.detail["role"] == "planner"
    assert "gr_not-a-real-key" not in orjson.dumps([r.to_dict() for r in _records(served)]).decode()
    lon, lat = served["point"]
    assert client.get(f"/v1/route?lon={lon}&lat={lat}").status_code == 401  # the hot path too
    assert _last(served).detail["route"] == "GET /v1/route"


def test_an_emergency_located_from_the_registry_is_audited(served: dict[str, Any]) -> None:
    client, keys, ids = served["client"], served["keys"], served["ids"]
    r = client.post(
        "/v1/reports", json={"category": "fire", "reporter_phone": PHONE}, headers=keys["intake"]
    )
    assert r.status_code == 201, r.text
    record = _last(served)
    assert (record.action, record.purpose) == ("registry_locate", "emergency_location")
    assert record.key_id == ids["intake"]
    assert record.subjects == (f"subscriber:{served['subscriber']}", f"report:{r.json()['id']}")
    assert record.detail["located_at_home"] is True


def _break_audit_log(served: dict[str, Any]) -> sa.Engine:
    engine: sa.Engine = served["app"].state.store.engine
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_head RENAME TO audit_head_away"))
    return engine


def _mend_audit_log(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_head_away RENAME TO audit_head"))


def _journaled_audit(served: dict[str, Any]) -> list[AuditRecord]:
    journal = served["app"].state.journal
    return [AuditRecord.from_dict(r.payload) for r in journal.pending(AUDIT_KIND)]


def _file_emergency_while_the_log_is_down(served: dict[str, Any]) -> tuple[int, str]:
    """Break the audit log, check display reads fail closed and an emergency located from
    the registry is filed with its audit record journaled; mend the log. Returns the count
    of chained records before and the report's id."""
    client, keys = served["client"], served["keys"]
    before = len(_records(served))
    engine = _break_audit_log(served)
    try:
        r = client.post("/v1/callers/lookup", json={"phone": PHONE}, headers=keys["intake"])
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "audit log" in r.json()["detail"]
        assert "Siti" not in r.text and "Aceh" not in r.text
        sub = served["subscriber"]
        assert client.get(f"/v1/subscribers/{sub}", headers=keys["admin"]).status_code == 503
        assert client.get("/v1/subscribers", headers=keys["admin"]).status_code == 503
        # An emergency located at the registered caller's home is still filed and routed.
        r = client.post(
            "/v1/reports",
            json={"category": "fire", "reporter_phone": PHONE},
            headers=keys["intake"],
        )
        assert r.status_code == 201, r.text
        report_id = r.json()["id"]
        assert r.json()["decision"]["location"]["source"] == "registered_caller"
        [kept] = _journaled_audit(served)  # its audit record waits in the journal
        assert kept.action == "registry_locate" and kept.subjects[1] == f"report:{report_id}"
        lon, lat = served["point"]
        routed = client.get(f"/v1/route?lon={lon}&lat={lat}", headers=keys["planner"])
        assert routed.status_code == 200, routed.text
        loop = served["app"].state.replay_loop
        assert loop.run_once().store_unavailable  # the log is still down: it waits
        assert len(_journaled_audit(served)) == 1
    finally:
        _mend_audit_log(engine)
    return before, report_id


def test_audit_failure_fails_display_reads_closed_but_files_emergencies(
    served: dict[str, Any],
) -> None:
    before, report_id = _file_emergency_while_the_log_is_down(served)
    client, keys = served["client"], served["keys"]
    r = client.post("/v1/callers/lookup", json={"phone": PHONE}, headers=keys["intake"])
    assert r.status_code == 200
    after = _records(served)[before:]
    # The journaled record is chained first, before the next record: the order is kept.
    assert [a.action for a in after] == ["registry_locate", "caller_lookup"]
    assert after[0].subjects[1] == f"report:{report_id}"
    assert not served["app"].state.journal.has_pending()
    check = served["app"].state.audit.verify()
    assert check.intact, check.reason


def test_the_replay_loop_chains_a_journaled_audit_record_exactly_once(
    served: dict[str, Any],
) -> None:
    before, report_id = _file_emergency_while_the_log_is_down(served)
    app = served["app"]
    result = app.state.replay_loop.run_once()  # the database is back
    assert result.replayed == 1 and not app.state.journal.has_pending()
    assert app.state.replay_loop.run_once() is None  # nothing left
    after = _records(served)[before:]
    assert [a.action for a in after] == ["registry_locate"]
    assert after[0].subjects == (f"subscriber:{served['subscriber']}", f"report:{report_id}")
    app.state.audit.chain_journaled(after[0].to_dict())  # a second replay changes nothing
    assert len(_records(served)) == before + 1
    check = app.state.audit.verify()
    assert check.intact, check.reason


def test_an_emergency_located_at_home_while_reports_cannot_be_written_is_replayed_sealed(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal's report replayer stores the registered caller's home sealed (it has the
    secrets), and the registry read is chained exactly once."""
    client, keys, app = served["client"], served["keys"], served["app"]
    before = len(_records(served))

    def disk_full(*_args: Any, **_kwargs: Any) -> bool:
        raise StoreUnavailableError("the database is unavailable (disk full)")

    with monkeypatch.context() as patch:  # reads work (the registry), report writes do not
        patch.setattr(ReportsRepo, "insert", disk_full)
        r = client.post(
            "/v1/reports",
            json={"category": "fire", "reporter_phone": PHONE},
            headers=keys["intake"],
        )
        assert r.status_code == 202, r.text
        assert r.json()["decision"]["location"]["source"] == "registered_caller"
    report_id = r.json()["id"]
    result = app.state.replay_loop.run_once()
    assert result.replayed == 1 and result.failed == 0 and not app.state.journal.has_pending()
    shown = client.get(f"/v1/reports/{report_id}", headers=keys["intake"])
    assert shown.status_code == 200 and shown.json()["status"] == "open"
    located = [a for a in _records(served)[before:] if a.action == "registry_locate"]
    # Read once per attempt (in the store, then offline): each read chained once.
    assert located and {a.subjects[1] for a in located} == {f"report:{report_id}"}
    assert len({a.record_id for a in located}) == len(located)
    check = app.state.audit.verify()
    assert check.intact, check.reason
