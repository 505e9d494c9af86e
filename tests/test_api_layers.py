"""``/v1/layers/{layer}/versions`` through the real app on both backends: upload (202, gate in
a thread), status and report, history, retire (409 for the only active), roles, limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AppSettings
from geo_router.intake.secrets import Secrets
from geo_router.store import Store

EXAMPLES = Path(__file__).parents[1] / "zones_data" / "examples"
GOOD = EXAMPLES / "kelurahan_split.geojson"
BROKEN = EXAMPLES / "kelurahan_split_broken.geojson"
BASE = "/v1/layers/kelurahan/versions"


@pytest.fixture(scope="module")
def served(
    module_database_url: str, demo_router: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The app over a fresh store of each backend (seeded at start), a key per role."""
    settings = AppSettings.of(data_dir=tmp_path_factory.mktemp("layers"), _env_file=None)
    secrets = Secrets.generate()
    app = create_app(
        settings,
        city_loader=lambda s: (demo_router, None),
        store_opener=lambda s: Store.from_url(module_database_url),
        secrets_loader=lambda s: secrets,
    )
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        store: Store = app.state.store
        keys = {}
        for role in ("intake", "planner", "analyst", "admin"):
            channel = "call" if role == "intake" else None
            key, _ = store.keys.create(role, f"test-{role}", channel=channel)
            keys[role] = {"Authorization": f"Bearer {key}"}
        app.state.auth.refresh()
        yield {"client": client, "keys": keys, "app": app}


def _upload(
    served: dict[str, Any], path: Path, role: str = "planner", **form: str
) -> httpx.Response:
    files = {"file": (path.name, path.read_bytes(), "application/geo+json")}
    return served["client"].post(BASE, files=files, data=form, headers=served["keys"][role])


def _until_done(served: dict[str, Any], url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body: dict[str, Any] = served["client"].get(url, headers=served["keys"]["planner"]).json()
        if body["state"] != "validating":
            return body
        time.sleep(0.1)
    raise AssertionError(f"{url} still validating")


def test_an_upload_answers_202_then_the_gate_stages_it(served: dict[str, Any]) -> None:
    r = _upload(served, GOOD, note="split of 3273011")
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["state"] == "validating" and answer["id"].startswith("lv_")
    assert answer["status_url"] == f"{BASE}/{answer['id']}" == r.headers["location"]
    done = _until_done(served, answer["status_url"])
    assert done["state"] == "staged" and done["note"] == "split of 3273011"
    assert done["report"]["blocking"] is False and done["feature_count"] == 152
    listing = served["client"].get(BASE, headers=served["keys"]["planner"]).json()
    assert listing["versions"][-1]["state"] == "active"  # version 1, from the profile
    mine = [e for e in listing["history"] if e["version"] == answer["id"]]
    assert [(e["from"], e["to"]) for e in mine] == [(None, "validating"), ("validating", "staged")]
    assert mine[0]["actor"] == "test-planner"
    audit = served["app"].state.audit
    audit.flush()
    records = [s.record for s in audit.tail(50) if s.record.action == "layer_change"]
    assert any(r.detail.get("version") == answer["id"] for r in records)


def test_the_broken_example_lists_its_errors_with_codes_and_locations(
    served: dict[str, Any],
) -> None:
    r = _upload(served, BROKEN)
    assert r.status_code == 202, r.text
    done = _until_done(served, r.json()["status_url"])
    assert done["state"] == "staged" and done["report"]["blocking"] is True
    errors = [f for f in done["report"]["findings"] if f["severity"] == "error"]
    assert {"overlap", "not_nested"} <= {f["code"] for f in errors}
    assert all(f["location"] is not None for f in errors)


def test_an_unreadable_file_is_failed_at_once(served: dict[str, Any]) -> None:
    r = served["client"].post(
        BASE,
        files={"file": ("k.geojson", b"not json", "application/geo+json")},
        headers=served["keys"]["planner"],
    )
    assert r.status_code == 202 and r.json()["state"] == "failed"
    shown = served["client"].get(r.json()["status_url"], headers=served["keys"]["admin"]).json()
    assert shown["report"]["error"]


def test_too_large_is_413_and_a_bad_format_422(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEO_ROUTER_LAYER_UPLOAD_MAX_BYTES", "2048")
    r = _upload(served, GOOD)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "GEO_ROUTER_LAYER_UPLOAD_MAX_BYTES" in r.json()["detail"]
    r = served["client"].post(
        BASE, files={"file": ("zones.csv", b"a,b\n", "text/csv")}, headers=served["keys"]["planner"]
    )
    assert r.status_code == 422 and ".csv" in r.json()["detail"]
    r = served["client"].post(BASE, data={"note": "no file"}, headers=served["keys"]["planner"])
    assert r.status_code == 422


def test_unknown_layer_and_version_are_404(served: dict[str, Any]) -> None:
    planner = served["keys"]["planner"]
    assert served["client"].get("/v1/layers/rt/versions", headers=planner).status_code == 404
    assert served["client"].get(f"{BASE}/lv_nope", headers=planner).status_code == 404


def test_retire_a_staged_version_and_409_for_the_only_active(served: dict[str, Any]) -> None:
    client, planner = served["client"], served["keys"]["planner"]
    staged = _until_done(served, _upload(served, GOOD).json()["status_url"])
    r = client.post(f"{BASE}/{staged['id']}/retire", json={"note": "superseded"}, headers=planner)
    assert r.status_code == 200 and r.json()["state"] == "retired"
    active = [
        v for v in client.get(BASE, headers=planner).json()["versions"] if v["state"] == "active"
    ]
    assert len(active) == 1
    r = client.post(f"{BASE}/{active[0]['id']}/retire", headers=planner)
    assert r.status_code == 409, r.text
    assert "only active" in r.json()["detail"]


@pytest.mark.parametrize("role", ["intake", "analyst"])
def test_intake_and_analyst_keys_are_refused(served: dict[str, Any], role: str) -> None:
    assert _upload(served, GOOD, role=role).status_code == 403
    assert served["client"].get(BASE, headers=served["keys"][role]).status_code == 403


def test_openapi_documents_the_multipart_upload(served: dict[str, Any]) -> None:
    spec = served["client"].get("/openapi.json").json()
    body = spec["paths"]["/v1/layers/{layer}/versions"]["post"]["requestBody"]
    schema_ref = body["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = spec["components"]["schemas"][schema_ref]["properties"]
    file = properties["file"]
    assert (
        file.get("format") == "binary" or file.get("contentMediaType") == "application/octet-stream"
    ), file
    assert "note" in properties
