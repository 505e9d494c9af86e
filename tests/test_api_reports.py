"""/v1/reports through the real app: roles, channels, statuses, idempotency, errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AppSettings
from geo_router.intake.geocode import Geocoder
from geo_router.intake.secrets import Secrets
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.store import Store
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.subscribers_repo import SubscribersRepo

#: A loopback peer: open mode (no key ever) serves only this machine.
LOCAL_PEER = ("127.0.0.1", 50000)

ROLES = {
    "call": ("intake", "call"),
    "sms": ("intake", "sms"),
    "planner": ("planner", None),
    "analyst": ("analyst", None),
    "admin": ("admin", None),
}
REGISTERED = "0812-3456-7890"


@pytest.fixture(scope="module")
def api(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The real app over a fresh SQLite store, with one key per role (two intake channels)."""
    settings = AppSettings.of(
        data_dir=tmp_path_factory.mktemp("api_reports"), rate_limit_per_hour=2, _env_file=None
    )
    keys: dict[str, str] = {}
    with Store.open(settings.store) as store:
        for label, (role, channel) in ROLES.items():
            keys[label], _ = store.keys.create(role, f"test-{label}", channel=channel)
    geocoder = Geocoder.from_profile(demo_router.snapshot.profile)
    app = create_app(settings, city_loader=lambda s: (demo_router, geocoder))
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
        engine = app.state.store.engine
        repos = SubscribersRepo(engine), ReportsRepo(engine)
        registry = SubscriberService(*repos, app.state.secrets, demo_router, geocoder)
        registry.create(REGISTERED, lon=point.x, lat=point.y)
        yield {
            "client": client,
            "keys": keys,
            "point": (point.x, point.y),
            "secrets": app.state.secrets,
            "registry": registry,
        }


def _h(api: dict[str, Any], label: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api['keys'][label]}", **extra}


def _body(api: dict[str, Any], **extra: Any) -> dict[str, Any]:
    lon, lat = api["point"]
    body = {"category": "waste", "description": "sampah", "location": {"lon": lon, "lat": lat}}
    body.update(extra)
    return body


def test_create_and_read_back(api: dict[str, Any], demo_router: Any) -> None:
    client = api["client"]
    r = client.post("/v1/reports", json=_body(api, category="fire"), headers=_h(api, "call"))
    assert r.status_code == 201, r.text
    report = r.json()
    assert r.headers["location"] == f"/v1/reports/{report['id']}"
    assert report["channel"] == "call" and report["status"] == "open"
    expected = demo_router.route(*api["point"], category="fire")
    assert report["zones"]["kelurahan"] == expected.zones["kelurahan"].zone_id
    assert report["decision"]["agency"] == expected.category.agency
    assert report["decision"]["versions"] == dict(demo_router.snapshot.versions)
    got = client.get(f"/v1/reports/{report['id']}", headers=_h(api, "call"))
    assert got.status_code == 200 and got.json() == report
    history = client.get(f"/v1/reports/{report['id']}/history", headers=_h(api, "analyst"))
    assert [h["to_status"] for h in history.json()["items"]] == ["open"]


def test_other_channel_gets_404_not_403(api: dict[str, Any]) -> None:
    client = api["client"]
    report = client.post("/v1/reports", json=_body(api), headers=_h(api, "call")).json()
    for path in (f"/v1/reports/{report['id']}", f"/v1/reports/{report['id']}/history"):
        assert client.get(path, headers=_h(api, "sms")).status_code == 404
    r = client.patch(
        f"/v1/reports/{report['id']}", json={"status": "acknowledged"}, headers=_h(api, "sms")
    )
    assert r.status_code == 404
    listed = client.get("/v1/reports", params={"limit": 500}, headers=_h(api, "sms")).json()
    assert all(item["channel"] == "sms" for item in listed["items"])
    r = client.post("/v1/reports", json=_body(api, channel="call"), headers=_h(api, "sms"))
    assert r.status_code == 403


def test_analysts_never_see_phone_fields(api: dict[str, Any]) -> None:
    client = api["client"]
    body = _body(api, reporter_phone="0813-1111-2222")
    report = client.post("/v1/reports", json=body, headers=_h(api, "call")).json()
    # The stored hash and ciphertext never leave the service; intake sees a masked number.
    assert "reporter_phone_hash" not in report and "reporter_phone_enc" not in report
    assert report["reporter_phone"] == "+62813****2222"
    assert "unregistered_caller" in report["flags"]
    seen = client.get(f"/v1/reports/{report['id']}", headers=_h(api, "analyst")).json()
    assert "reporter_phone_hash" not in seen and "reporter_phone_enc" not in seen
    assert "reporter_phone" not in seen
    listed = client.get("/v1/reports", headers=_h(api, "analyst")).json()
    assert listed["items"] and all("reporter_phone_hash" not in i for i in listed["items"])
    assert "+6281311112222" not in str(listed)


def test_registered_caller_and_geocoded_address(api: dict[str, Any]) -> None:
    client = api["client"]
    body = _body(api, reporter_phone=REGISTERED)
    del body["location"]
    r = client.post("/v1/reports", json=body, headers=_h(api, "call"))
    assert r.status_code == 201, r.text
    assert r.json()["location_source"] == "registered_caller"
    body = _body(api, address="Jalan Aceh 1")
    del body["location"]
    r = client.post("/v1/reports", json=body, headers=_h(api, "call"))
    assert r.status_code == 201, r.text
    assert r.json()["location_source"] == "geocoded"
    assert (r.json()["lon"], r.json()["lat"]) == (107.641061, -6.849032)
    body["address"] = "jl acehh"
    weak = client.post("/v1/reports", json=body, headers=_h(api, "call"))
    assert weak.status_code == 422
    assert weak.headers["content-type"] == "application/problem+json"
    assert "candidates" in weak.json()


def test_status_lifecycle_through_patch(api: dict[str, Any]) -> None:
    client = api["client"]
    report = client.post("/v1/reports", json=_body(api), headers=_h(api, "call")).json()
    url = f"/v1/reports/{report['id']}"
    assert (
        client.patch(url, json={"status": "acknowledged"}, headers=_h(api, "call")).json()["status"]
        == "acknowledged"
    )
    r = client.patch(url, json={"status": "closed"}, headers=_h(api, "call"))
    assert r.status_code == 422 and "resolution" in r.json()["detail"]
    r = client.patch(
        url,
        json={"status": "closed", "resolution": "resolved", "note": "ok"},
        headers=_h(api, "call"),
    )
    assert r.json()["status"] == "closed" and r.json()["closed_at"]
    assert client.patch(url, json={"status": "open"}, headers=_h(api, "call")).status_code == 403
    assert client.patch(url, json={"status": "open"}, headers=_h(api, "admin")).status_code == 200
    assert client.patch(url, json={"status": "open"}, headers=_h(api, "analyst")).status_code == 403
    history = client.get(f"{url}/history", headers=_h(api, "admin")).json()["items"]
    assert [h["to_status"] for h in history] == ["open", "acknowledged", "closed", "open"]
    assert history[2]["note"] == "ok" and history[3]["actor"].endswith("test-admin")


def test_list_filters_as_query_params(api: dict[str, Any]) -> None:
    client = api["client"]
    made = client.post("/v1/reports", json=_body(api, category="noise"), headers=_h(api, "call"))
    zone = made.json()["zones"]["kelurahan"]
    lon, lat = api["point"]
    params = {
        "zone": f"kelurahan:{zone}",
        "category": "noise",
        "status": "open",
        "channel": "call",
        "created_from": "2020-01-01T00:00:00Z",
        "bbox": f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}",
        "limit": 5,
    }
    page = client.get("/v1/reports", params=params, headers=_h(api, "admin")).json()
    assert page["total"] >= 1 and page["limit"] == 5
    assert made.json()["id"] in [i["id"] for i in page["items"]]
    assert all(i["category"] == "noise" for i in page["items"])
    for bad in ({"limit": 501}, {"zone": "nocolon"}, {"bbox": "1,2"}, {"status": "done"}):
        r = client.get("/v1/reports", params=bad, headers=_h(api, "admin"))
        assert r.status_code == 422, bad
        assert r.json()["errors"][0]["field"] == next(iter(bad))


def test_errors(api: dict[str, Any]) -> None:
    client = api["client"]
    r = client.post("/v1/reports", json=_body(api, category="graffiti"), headers=_h(api, "call"))
    assert r.status_code == 422
    assert "fire" in r.json()["detail"] and "waste" in r.json()["detail"]
    r = client.post("/v1/reports", json=_body(api, reporter_phone="12ab"), headers=_h(api, "call"))
    assert r.status_code == 422
    r = client.post("/v1/reports", json=_body(api, location={"lon": 500}), headers=_h(api, "call"))
    assert r.status_code == 422
    r = client.post(
        "/v1/reports",
        content=b"{nope",
        headers=_h(api, "call", **{"content-type": "application/json"}),
    )
    assert r.status_code == 400
    assert client.get("/v1/reports/r_nope", headers=_h(api, "admin")).status_code == 404
    assert (
        client.post("/v1/reports", json=_body(api), headers=_h(api, "analyst")).status_code == 403
    )
    assert client.get("/v1/reports", headers=_h(api, "planner")).status_code == 403
    assert client.get("/v1/reports").status_code == 401


def test_rate_limit_429_with_retry_after_but_emergencies_pass(api: dict[str, Any]) -> None:
    client = api["client"]
    body = _body(api, reporter_phone="0813-5555-6666")
    for _ in range(2):
        assert client.post("/v1/reports", json=body, headers=_h(api, "call")).status_code == 201
    r = client.post("/v1/reports", json=body, headers=_h(api, "call"))
    assert r.status_code == 429
    assert 3500 <= int(r.headers["retry-after"]) <= 3600
    r = client.post("/v1/reports", json={**body, "category": "medical"}, headers=_h(api, "call"))
    assert r.status_code == 201 and "rate_limited" in r.json()["flags"]


def test_idempotency_key_header(api: dict[str, Any]) -> None:
    client = api["client"]
    headers = _h(api, "call", **{"Idempotency-Key": "req-42"})
    first = client.post("/v1/reports", json=_body(api), headers=headers)
    again = client.post("/v1/reports", json=_body(api), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    other = client.post("/v1/reports", json=_body(api, description="x"), headers=headers)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]


def test_open_mode_admin_can_file(demo_router: Any, tmp_path: Path) -> None:
    """No keys on loopback: the open-mode principal (admin) must name a channel."""
    settings = AppSettings.of(data_dir=tmp_path, _env_file=None)
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(app, client=LOCAL_PEER) as client:
        assert app.state.ready_event.wait(60)
        lon, lat = (
            demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point().coords[0]
        )
        body = {"category": "waste", "location": {"lon": lon, "lat": lat}}
        assert client.post("/v1/reports", json=body).status_code == 422
        r = client.post("/v1/reports", json={**body, "channel": "web"})
        assert r.status_code == 201, r.text


def test_a_registered_callers_number_is_parsed_and_hashed_once(
    api: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the request to the row: one parse, one HMAC, one encryption, and no decryption
    (neither of the number, nor of the subscriber's name and address) unless the answer
    shows a stored number."""
    client, point = api["client"], api["point"]
    api["registry"].create(
        "0812-3456-7811", name="Siti", address="Jalan Aceh 1", lon=point[0], lat=point[1]
    )
    calls: Counter[str] = Counter()

    def counted(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(phonenumbers, "parse", counted("parse", phonenumbers.parse))
    for name in ("hash_phone", "encrypt", "decrypt"):
        monkeypatch.setattr(Secrets, name, counted(name, getattr(Secrets, name)))
    body = {"category": "waste", "reporter_phone": "+62 812-3456-7811"}
    shown = {}
    for label in ("call", "admin"):
        calls.clear()
        r = client.post("/v1/reports", json={**body, "channel": "call"}, headers=_h(api, label))
        assert r.status_code == 201, r.text
        assert r.json()["location_source"] == "registered_caller"
        # the home is opened to locate the report and sealed again with it (Medium 10)
        assert calls == {"parse": 1, "hash_phone": 1, "encrypt": 2, "decrypt": 1}, label
        shown[label] = r.json()["reporter_phone"]
    assert shown == {"call": "+62812****7811", "admin": "+6281234567811"}
    report_id = r.json()["id"]
    calls.clear()
    seen = client.get(f"/v1/reports/{report_id}", headers=_h(api, "analyst")).json()
    assert "reporter_phone" not in seen and not calls  # shows no number: decrypts nothing
    admin = client.get(f"/v1/reports/{report_id}", headers=_h(api, "admin")).json()
    # the number, and the home the report lies at
    assert admin["reporter_phone"] == "+6281234567811" and calls == {"decrypt": 2}


@pytest.mark.parametrize("value", [True, "107.6", None, [107.6]])
def test_report_coordinates_are_json_numbers_as_for_route(api: dict[str, Any], value: Any) -> None:
    # Issue 10, Low: "lon": true was stored as 1.0 and "lon": "107.6" taken, /v1/route refuses both.
    body = _body(api)
    body["location"]["lon"] = value
    r = api["client"].post("/v1/reports", json=body, headers=_h(api, "call"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "location.lon" in r.text and "must be a number" in r.text
