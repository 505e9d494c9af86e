"""/open311/v2 through the real app, written the way a GeoReport v2 client talks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AppSettings
from geo_router.intake.geocode import Geocoder
from geo_router.intake.reports.importer import import_reports
from geo_router.store import Store
from geo_router.store.reports_repo import ReportsRepo

BASE = "/open311/v2"
XML = "text/xml; charset=utf-8"


@pytest.fixture(scope="module")
def api(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = AppSettings.of(data_dir=tmp_path_factory.mktemp("api_open311"), _env_file=None)
    keys: dict[str, str] = {}
    with Store.open(settings.store) as store:
        keys["web"], _ = store.keys.create("intake", "web portal", channel=None)
        keys["sms"], _ = store.keys.create("intake", "sms gateway", channel="sms")
        keys["planner"], _ = store.keys.create("planner", "planner")
        keys["admin"], _ = store.keys.create("admin", "admin")
        revoked, record = store.keys.create("intake", "old")
        store.keys.revoke(record.id)
        keys["revoked"] = revoked
    geocoder = Geocoder.from_profile(demo_router.snapshot.profile)
    app = create_app(settings, city_loader=lambda s: (demo_router, geocoder))
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
        yield {"client": client, "keys": keys, "point": (point.x, point.y), "app": app}


def _form(api: dict[str, Any], **extra: str) -> dict[str, str]:
    lon, lat = api["point"]
    form = {
        "api_key": api["keys"]["web"],
        "jurisdiction_id": "kota-contoh",
        "service_code": "waste",
        "lat": repr(lat),
        "long": repr(lon),
        "email": "someone@example.org",
        "first_name": "Siti",
        "last_name": "Aminah",
        "description": "Sampah <menumpuk> & bau",
        "media_url": "https://example.org/photo.jpg",
    }
    form.update(extra)
    return form


def _post(api: dict[str, Any], fmt: str = "json", **extra: str) -> Any:
    return api["client"].post(f"{BASE}/requests.{fmt}", data=_form(api, **extra))


def test_services_json_and_xml(api: dict[str, Any], demo_router: Any) -> None:
    client = api["client"]
    r = client.get(f"{BASE}/services.json")
    assert r.status_code == 200
    codes = [s["service_code"] for s in r.json()]
    assert codes == [c.code for c in demo_router.snapshot.profile.categories]
    first = r.json()[0]
    assert first["metadata"] is False and first["type"] == "realtime" and first["group"]
    x = client.get(f"{BASE}/services.xml")
    assert x.headers["content-type"] == XML
    root = ET.fromstring(x.content)
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root.findall("service")] == codes
    d = client.get(f"{BASE}/services/fire.json")
    assert d.json() == {"service_code": "fire", "attributes": []}
    dx = ET.fromstring(client.get(f"{BASE}/services/fire.xml").content)
    assert dx.tag == "service_definition" and dx.findtext("service_code") == "fire"
    missing = client.get(f"{BASE}/services/graffiti.json")
    assert missing.status_code == 404
    assert missing.json()[0]["code"] == 404 and "graffiti" in missing.json()[0]["description"]
    assert client.get(f"{BASE}/services.yaml").status_code == 404


def test_post_form_as_the_spec_shows(api: dict[str, Any], demo_router: Any) -> None:
    r = _post(api)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    (answer,) = r.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    assert answer["account_id"] is None
    request_id = answer["service_request_id"]

    got = api["client"].get(f"{BASE}/requests/{request_id}.json")
    assert got.status_code == 200
    (request,) = got.json()
    assert request["status"] == "open"
    assert request["service_code"] == "waste"
    assert request["description"] == "Sampah <menumpuk> & bau"
    assert request["agency_responsible"] == demo_router.category("waste").agency
    assert (request["long"], request["lat"]) == pytest.approx(api["point"])
    assert request["requested_datetime"].endswith("+00:00")
    assert request["media_url"] == "https://example.org/photo.jpg"
    assert "Aminah" not in got.text and "someone@" not in got.text

    x = api["client"].get(f"{BASE}/requests/{request_id}.xml")
    assert x.headers["content-type"] == XML
    node = ET.fromstring(x.content).find("request")
    assert node is not None
    assert node.findtext("service_request_id") == request_id
    assert node.findtext("description") == "Sampah <menumpuk> & bau"

    token = api["client"].get(f"{BASE}/tokens/{request_id}.json").json()
    assert token == [{"service_request_id": request_id, "token": request_id}]


def test_post_xml_and_multipart(api: dict[str, Any]) -> None:
    x = _post(api, "xml")
    assert x.status_code == 200 and x.headers["content-type"] == XML
    root = ET.fromstring(x.content)
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id", "").startswith("r_")
    assert root.find("request/account_id") is not None
    multipart = api["client"].post(
        f"{BASE}/requests.json",
        data=_form(api),
        files={"media": ("photo.jpg", b"\xff\xd8fake", "image/jpeg")},
    )
    assert multipart.status_code == 200, multipart.text


def test_channel_follows_the_key(api: dict[str, Any]) -> None:
    admin = {"Authorization": f"Bearer {api['keys']['admin']}"}
    for key, channel in (("web", "web"), ("sms", "sms"), ("admin", "web")):
        r = _post(api, api_key=api["keys"][key])
        assert r.status_code == 200, r.text
        request_id = r.json()[0]["service_request_id"]
        stored = api["client"].get(f"/v1/reports/{request_id}", headers=admin).json()
        assert stored["channel"] == channel


@pytest.mark.parametrize(
    ("changes", "status", "needle"),
    [
        ({"api_key": "gr_not-a-key"}, 403, "api_key"),
        ({"service_code": ""}, 400, "service_code"),
        ({"service_code": "graffiti"}, 400, "graffiti"),
        ({"lat": "north"}, 400, "lat"),
        ({"lat": "1_0"}, 400, "lat"),  # Python's float() took it as 10.0
        ({"long": "nan"}, 400, "long"),
        ({"long": ""}, 400, "long"),
        ({"lat": "", "long": ""}, 400, "location"),
        ({"lat": "", "long": "", "address_string": "jl acehh"}, 400, "address"),
        ({"phone": "12ab"}, 400, "phone"),
    ],
)
def test_post_errors_are_spec_error_lists(
    api: dict[str, Any], changes: dict[str, str], status: int, needle: str
) -> None:
    for fmt in ("json", "xml"):
        r = _post(api, fmt, **changes)
        assert r.status_code == status, (fmt, r.text)
        if fmt == "json":
            (error,) = r.json()
            assert error["code"] == status
            assert needle in error["description"].lower() or needle in str(r.json())
        else:
            assert r.headers["content-type"] == XML
            root = ET.fromstring(r.content)
            assert root.tag == "errors"
            assert root.findtext("error/code") == str(status)


def test_post_key_rules(api: dict[str, Any]) -> None:
    client = api["client"]
    no_key = {k: v for k, v in _form(api).items() if k != "api_key"}
    r = client.post(f"{BASE}/requests.json", data=no_key)
    assert r.status_code == 401 and r.json()[0]["code"] == 401
    r = _post(api, api_key=api["keys"]["revoked"])
    assert r.status_code == 403
    r = _post(api, api_key=api["keys"]["planner"])
    assert r.status_code == 403 and "planner" in r.json()[0]["description"]
    header = {"Authorization": f"Bearer {api['keys']['web']}"}
    assert client.post(f"{BASE}/requests.json", data=no_key, headers=header).status_code == 200
    ok = _post(api, address_string="Jalan Aceh 1", lat="", long="")
    assert ok.status_code == 200, ok.text


def test_get_requests_filters(api: dict[str, Any], demo_router: Any, tmp_path: Any) -> None:
    client = api["client"]
    fire = _post(api, service_code="noise").json()[0]["service_request_id"]
    emergency = _post(api, service_code="fire").json()[0]["service_request_id"]
    waste = _post(api).json()[0]["service_request_id"]
    admin = {"Authorization": f"Bearer {api['keys']['admin']}"}
    closed = client.patch(
        f"/v1/reports/{waste}", json={"status": "closed", "resolution": "duplicate"}, headers=admin
    )
    assert closed.status_code == 200

    def ids(**params: str) -> list[str]:
        r = client.get(f"{BASE}/requests.json", params=params)
        assert r.status_code == 200, r.text
        return [item["service_request_id"] for item in r.json()]

    assert fire in ids() and waste in ids()
    # Emergencies never appear on the public feed.
    assert emergency not in ids()
    assert client.get(f"{BASE}/requests/{emergency}.json").status_code == 404
    assert ids(service_request_id=f"{fire},{waste},r_nope") == [waste, fire]
    assert fire in ids(service_code="noise") and waste not in ids(service_code="noise")
    assert waste in ids(status="closed") and fire not in ids(status="closed")
    assert fire in ids(status="open") and waste not in ids(status="open")
    assert ids(end_date="2020-01-01T00:00:00Z") == []
    got = client.get(f"{BASE}/requests/{waste}.json").json()[0]
    assert got["status"] == "closed" and got["status_notes"] == "duplicate"
    bad = client.get(f"{BASE}/requests.json", params={"start_date": "yesterday"})
    assert bad.status_code == 400 and bad.json()[0]["code"] == 400
    bad_xml = client.get(f"{BASE}/requests.xml", params={"status": "pending"})
    assert ET.fromstring(bad_xml.content).findtext("error/code") == "400"

    # Historic reports older than 90 days only show up when the dates ask for them.
    source = tmp_path / "old.csv"
    lon, lat = api["point"]
    source.write_text(f"x,y,c,t\n{lon},{lat},waste,2020-06-01T10:00:00Z\n")
    import_reports(
        source,
        demo_router,
        ReportsRepo(api["app"].state.store.engine),
        lon_field="x",
        lat_field="y",
        category_field="c",
        created_field="t",
    )
    old = ids(start_date="2020-05-01T00:00:00Z", end_date="2020-07-01T00:00:00Z")
    assert len(old) == 1 and old[0] not in ids()
    xml = client.get(f"{BASE}/requests.xml", params={"service_request_id": old[0]})
    assert ET.fromstring(xml.content).findtext("request/requested_datetime") == (
        "2020-06-01T10:00:00+00:00"
    )


def test_unknown_ids_are_404(api: dict[str, Any]) -> None:
    client = api["client"]
    for path in ("requests/r_nope.json", "tokens/r_nope.json"):
        r = client.get(f"{BASE}/{path}")
        assert r.status_code == 404 and r.json()[0]["code"] == 404
    x = client.get(f"{BASE}/requests/r_nope.xml")
    assert x.status_code == 404 and ET.fromstring(x.content).findtext("error/code") == "404"
