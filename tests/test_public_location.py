"""A registered caller's home never reaches anyone who may not see the registry.

A report filed with only ``reporter_phone`` is located at the caller's registered home. The
public Open311 feed (JSON and XML, one request and the list) and analysts' ``/v1/reports``
show it at its kelurahan's public point instead; a report with its own point keeps it.
Both storage dialects (PostgreSQL when GEO_ROUTER_TEST_DATABASE_URL is set).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AppSettings
from geo_router.intake.secrets import Secrets
from geo_router.store import Store

BASE = "/open311/v2"
PHONE = "0812-3456-7890"


def _near(point: tuple[float, float]) -> Any:
    """Equal to ``point`` up to float noise (pytest's default tolerance is ~10 m here)."""
    return pytest.approx(point, rel=0, abs=1e-9)


def _home(demo_router: Any) -> tuple[float, float]:
    """A point inside the first kelurahan that is not that kelurahan's published point."""
    zone = demo_router.snapshot.layers["kelurahan"].geometries[0]
    inner = zone.representative_point()
    for x, y in (
        zone.exterior.coords if zone.geom_type == "Polygon" else zone.geoms[0].exterior.coords
    ):
        home = shapely.Point((inner.x + x) / 2, (inner.y + y) / 2)
        if zone.contains(home) and home.distance(inner) > 1e-4:
            return (home.x, home.y)
    raise AssertionError("no home point found")


def _zone_point(demo_router: Any, zone_id: str) -> tuple[float, float]:
    layer = demo_router.snapshot.layers["kelurahan"]
    row = list(layer.ids).index(zone_id)
    point = shapely.point_on_surface(layer.geometries[row])
    return (point.x, point.y)


@pytest.fixture
def app(database_url: str, demo_router: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = AppSettings.of(data_dir=tmp_path, database_url=database_url, _env_file=None)
    secrets = Secrets.generate()
    application = create_app(
        settings,
        city_loader=lambda s: (demo_router, None),
        store_opener=lambda s: Store.from_url(database_url),
        secrets_loader=lambda s: secrets,
    )
    with TestClient(application) as client:
        assert application.state.ready_event.wait(60), application.state.load_error
        store = application.state.store
        headers = {}
        for role in ("intake", "analyst"):
            channel = "call" if role == "intake" else None
            key, _ = store.keys.create(role, f"test-{role}", channel=channel)
            headers[role] = {"Authorization": f"Bearer {key}"}
        application.state.auth.refresh()
        home = _home(demo_router)
        body = {"phone": PHONE, "name": "Siti", "location": {"lon": home[0], "lat": home[1]}}
        r = client.post("/v1/subscribers", json=body, headers=headers["intake"])
        assert r.status_code == 201, r.text
        yield {"client": client, "headers": headers, "home": home}


def _file(app: dict[str, Any], **body: Any) -> dict[str, Any]:
    payload = {"category": "waste", "description": "Sampah menumpuk di depan rumah", **body}
    r = app["client"].post("/v1/reports", json=payload, headers=app["headers"]["intake"])
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _home_texts(home: tuple[float, float]) -> list[str]:
    """The home's coordinates as they could be written in a JSON or XML body."""
    return [text for v in home for text in (repr(v), f"{v:.6f}", f"{v:.5f}")]


def _published(app: dict[str, Any], report_id: str) -> list[tuple[str, tuple[float, float]]]:
    """Every public answer about one request: its body and the (lon, lat) it shows."""
    client = app["client"]
    out = []
    for path in (f"/requests/{report_id}", "/requests"):
        params = {} if path != "/requests" else {"service_request_id": report_id}
        r = client.get(f"{BASE}{path}.json", params=params)
        assert r.status_code == 200, r.text
        [item] = r.json()
        assert item["service_request_id"] == report_id
        out.append((r.text, (item["long"], item["lat"])))
        x = client.get(f"{BASE}{path}.xml", params=params)
        assert x.status_code == 200, x.text
        [request] = ET.fromstring(x.content).findall("request")
        lon, lat = float(request.findtext("long") or "nan"), float(request.findtext("lat") or "nan")
        out.append((x.text, (lon, lat)))
    return out


def test_a_registered_callers_report_is_published_at_its_kelurahan(
    app: dict[str, Any], demo_router: Any
) -> None:
    report = _file(app, reporter_phone=PHONE)
    home = app["home"]
    # The record itself is at the home (dispatch needs it); intake may see it.
    assert report["location_source"] == "registered_caller"
    assert (report["lon"], report["lat"]) == _near(home)
    public = _zone_point(demo_router, report["zones"]["kelurahan"])
    assert public != _near(home)
    for text, point in _published(app, report["id"]):
        assert point == _near(public)
        assert [t for t in _home_texts(home) if t in text] == []
        assert "Sampah menumpuk di depan rumah" in text  # the reporter's own words stay
    [item] = app["client"].get(f"{BASE}/requests/{report['id']}.json").json()
    assert item["address"] is None and item["address_id"] is None and item["zipcode"] is None
    # Analysts may not see the registry: the same public point in /v1/reports.
    client, analyst = app["client"], app["headers"]["analyst"]
    one = client.get(f"/v1/reports/{report['id']}", headers=analyst)
    listed = client.get("/v1/reports", headers=analyst)
    assert one.status_code == 200 and listed.status_code == 200
    [seen] = [i for i in listed.json()["items"] if i["id"] == report["id"]]
    for shown, text in ((one.json(), one.text), (seen, listed.text)):
        assert (shown["lon"], shown["lat"]) == _near(public)
        assert (shown["decision"]["lon"], shown["decision"]["lat"]) == _near(public)
        for responders in shown["decision"]["responders"].values():
            assert all(r["distance_m"] is None and r["bearing_deg"] is None for r in responders)
        assert [t for t in _home_texts(home) if t in text] == []
    # Intake keys work the registry and see the home.
    intake = client.get(f"/v1/reports/{report['id']}", headers=app["headers"]["intake"]).json()
    assert (intake["lon"], intake["lat"]) == _near(home)


def test_a_report_with_its_own_point_is_published_there(app: dict[str, Any]) -> None:
    lon, lat = app["home"]
    gps = (lon + 1e-4, lat)
    report = _file(app, location={"lon": gps[0], "lat": gps[1]}, reporter_phone=PHONE)
    assert report["location_source"] == "given"
    for _, point in _published(app, report["id"]):
        assert point == _near(gps)
    seen = app["client"].get(f"/v1/reports/{report['id']}", headers=app["headers"]["analyst"])
    assert (seen.json()["lon"], seen.json()["lat"]) == _near(gps)
