"""/v1/subscribers and /v1/callers through the real app (auth, problems, roles)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AppSettings
from geo_router.intake.secrets import Secrets
from geo_router.store import Store

ROLE_TABLE = Path(__file__).parent / "data" / "role_table.csv"


class OneAddressGeocoder:
    """Geocodes 'Jalan Aceh 1' confidently, nothing else."""

    def __init__(self, lon: float, lat: float) -> None:
        self.lon, self.lat = lon, lat

    def geocode(self, text: str) -> Any:
        from types import SimpleNamespace

        if text == "Jalan Aceh 1":
            best = SimpleNamespace(lon=self.lon, lat=self.lat, confidence=0.95, label=text)
            return SimpleNamespace(matched=True, best=best, candidates=[best])
        return SimpleNamespace(matched=False, best=None, candidates=[])


@pytest.fixture(scope="module")
def points(demo_router: Any) -> list[tuple[float, float]]:
    layer = demo_router.snapshot.layers["kelurahan"]
    return [(g.representative_point().x, g.representative_point().y) for g in layer.geometries[:3]]


@contextmanager
def _served(
    database_url: str, demo_router: Any, points: list, tmp_path: Path, **named: Any
) -> Iterator[tuple[TestClient, Store]]:
    settings = AppSettings.of(data_dir=tmp_path, database_url=database_url, _env_file=None, **named)
    secrets = Secrets.generate()
    app = create_app(
        settings,
        city_loader=lambda s: (demo_router, OneAddressGeocoder(*points[1])),
        store_opener=lambda s: Store.from_url(database_url),
        secrets_loader=lambda s: secrets,
    )
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        yield client, app.state.store


@pytest.fixture
def app_and_store(
    database_url: str, demo_router: Any, points: list, tmp_path: Path
) -> Iterator[tuple[TestClient, Store]]:
    with _served(database_url, demo_router, points, tmp_path) as served:
        yield served


def _keys_of(client: TestClient, store: Store) -> dict[str, dict[str, str]]:
    out = {}
    for role in ("intake", "planner", "analyst", "admin"):
        key, _ = store.keys.create(role, f"test-{role}")
        out[role] = {"Authorization": f"Bearer {key}"}
    client.app.state.auth.refresh()  # leave open mode now, not after its cache expires
    return out


@pytest.fixture
def keys(app_and_store: tuple[TestClient, Store]) -> dict[str, dict[str, str]]:
    return _keys_of(*app_and_store)


@pytest.fixture
def client(app_and_store: tuple[TestClient, Store]) -> TestClient:
    return app_and_store[0]


def _body(points: list, phone: str = "0812-3456-7890", **extra: Any) -> dict[str, Any]:
    lon, lat = points[0]
    return {"phone": phone, "name": "Siti", "location": {"lon": lon, "lat": lat}, **extra}


def test_create_masks_phone_for_intake_reveals_for_admin(
    client: TestClient, keys: dict, points: list
) -> None:
    r = client.post("/v1/subscribers", json=_body(points), headers=keys["intake"])
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["phone"] == "+62812****7890" and sub["location_source"] == "given"
    assert r.headers["location"] == f"/v1/subscribers/{sub['id']}"
    assert set(sub["zones"]) == {"kelurahan", "kecamatan", "fire_district", "police_sector"}
    admin = client.get(f"/v1/subscribers/{sub['id']}", headers=keys["admin"]).json()
    assert admin["phone"] == "+6281234567890" and admin["phone_revealed"] is True
    intake = client.get(f"/v1/subscribers/{sub['id']}", headers=keys["intake"])
    assert intake.status_code == 403  # intake registers; reading the registry is admin only


def test_create_by_address_and_errors(client: TestClient, keys: dict, points: list) -> None:
    h = keys["intake"]
    r = client.post(
        "/v1/subscribers", json={"phone": "0812 1111 2222", "address": "Jalan Aceh 1"}, headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["location_source"] == "geocoded"

    bad = client.post("/v1/subscribers", json=_body(points, phone="12"), headers=h)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "too short" in bad.json()["detail"]

    dup = client.post("/v1/subscribers", json=_body(points, phone="+62 812 1111 2222"), headers=h)
    assert dup.status_code == 409, dup.text
    assert dup.json()["code"] == "duplicate_phone"

    nowhere = client.post("/v1/subscribers", json={"phone": "0812 1111 3333"}, headers=h)
    assert nowhere.status_code == 422
    assert "location or a geocodable address" in nowhere.json()["detail"]
    naive = client.post(
        "/v1/subscribers",
        json=_body(points, phone="0812 1111 4444", consent_at="2024-01-01T00:00:00"),
        headers=h,
    )
    assert naive.status_code == 422


def test_list_patch_delete(client: TestClient, keys: dict, points: list) -> None:
    ids = [
        client.post(
            "/v1/subscribers", json=_body(points, phone=f"08123456780{i}"), headers=keys["intake"]
        ).json()["id"]
        for i in range(3)
    ]
    h = keys["admin"]
    page = client.get("/v1/subscribers", params={"limit": 2, "offset": 1}, headers=h).json()
    assert [s["id"] for s in page["items"]] == ids[1:3] and page["total"] == 3
    assert client.get("/v1/subscribers", params={"limit": 0}, headers=h).status_code == 422

    lon, lat = points[2]
    moved = client.patch(
        f"/v1/subscribers/{ids[0]}",
        json={"location": {"lon": lon, "lat": lat}, "name": "Budi"},
        headers=h,
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["lon"], moved.json()["name"]) == (lon, "Budi")
    cleared = client.patch(f"/v1/subscribers/{ids[0]}", json={"location": None}, headers=h)
    assert cleared.status_code == 422  # no address to fall back on
    dup = client.patch(f"/v1/subscribers/{ids[0]}", json={"phone": "081234567801"}, headers=h)
    assert dup.status_code == 409

    assert client.delete(f"/v1/subscribers/{ids[0]}", headers=h).status_code == 204
    assert client.get(f"/v1/subscribers/{ids[0]}", headers=h).status_code == 404
    assert client.delete(f"/v1/subscribers/{ids[0]}", headers=h).status_code == 404


def test_import_csv_body_and_multipart(client: TestClient, keys: dict, points: list) -> None:
    lon, lat = points[0]
    good = (
        f"phone,name,address,lon,lat\n081299990001,A,,{lon},{lat}\n081299990002,B,Jalan Aceh 1,,\n"
    )
    r = client.post(
        "/v1/subscribers/import",
        content=good,
        headers={**keys["admin"], "content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["committed"]) == (2, True)

    bad = f"phone,lon,lat\n081299990003,{lon},{lat}\n12,{lon},{lat}\n"
    refused = client.post(
        "/v1/subscribers/import", files={"file": ("s.csv", bad, "text/csv")}, headers=keys["admin"]
    )
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["errors"][0]["field"] == "row 3.phone"
    assert problem["summary"]["created"] == 0
    dry = client.post(
        "/v1/subscribers/import",
        params={"dry_run": "true"},
        files={"file": ("s.csv", bad, "text/csv")},
        headers=keys["admin"],
    )
    assert dry.status_code == 200 and dry.json()["valid"] == 1
    partial = client.post(
        "/v1/subscribers/import",
        params={"skip_invalid": "true"},
        files={"file": ("s.csv", bad, "text/csv")},
        headers=keys["admin"],
    )
    assert partial.json()["created"] == 1
    assert client.post("/v1/subscribers/import", headers=keys["admin"]).status_code == 422
    assert (
        client.post("/v1/subscribers/import", content=good, headers=keys["intake"]).status_code
        == 403
    )


def test_callers(client: TestClient, keys: dict, points: list) -> None:
    h = keys["intake"]
    sub = client.post("/v1/subscribers", json=_body(points), headers=h).json()
    known = client.post("/v1/callers/lookup", json={"phone": "+62 812-3456-7890"}, headers=h)
    assert known.status_code == 200, known.text
    body = known.json()
    assert body["registered"] is True and body["subscriber_id"] == sub["id"]
    assert body["phone"] == "+62812****7890"
    assert body["location"]["source"] == "given" and body["name"] == "Siti"
    assert body["zones"]["kelurahan"]["zone_id"] == sub["zones"]["kelurahan"]["zone_id"]
    assert body["nuisance"] == {"reports_made": 0, "false_reports": 0, "last_seen": None}
    unknown = client.post("/v1/callers/lookup", json={"phone": "081299998888"}, headers=h)
    assert unknown.json()["registered"] is False and unknown.json()["location"] is None
    bad = client.post("/v1/callers/lookup", json={"phone": "hello"}, headers=h)
    assert bad.status_code == 422 and "not a number" in bad.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.phone"),
        ({"phone": 81234567890}, "body.phone"),
        ({"phone": ""}, "body.phone"),
        ({"phone": "0812", "name": "x"}, "body.name"),
        ([], "body"),
    ],
)
def test_caller_lookup_bad_body_is_422_naming_the_field(
    client: TestClient, keys: dict, body: Any, field: str
) -> None:
    r = client.post("/v1/callers/lookup", json=body, headers=keys["intake"])
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_caller_path_form_is_gone_by_default(client: TestClient, keys: dict) -> None:
    """The number never sits in a URL unless an operator turns the old form on."""
    paths = {ctx.path for ctx in iter_route_contexts(client.app.routes)}
    assert "/v1/callers/{phone}" not in paths and "/v1/callers/lookup" in paths
    for who in ("intake", "admin"):
        r = client.get("/v1/callers/+6281234567890", headers=keys[who])
        assert r.status_code == 404, (who, r.text)
    doc = client.get("/openapi.json").json()
    assert "/v1/callers/{phone}" not in doc["paths"]


def test_caller_path_form_behind_the_setting_answers_as_the_post(
    database_url: str, demo_router: Any, points: list, tmp_path: Path
) -> None:
    with _served(database_url, demo_router, points, tmp_path, legacy_caller_path=True) as served:
        client, store = served
        keys = _keys_of(client, store)
        h = keys["intake"]
        client.post("/v1/subscribers", json=_body(points), headers=h)
        by_path = client.get("/v1/callers/+6281234567890", headers=h)
        by_body = client.post("/v1/callers/lookup", json={"phone": "+6281234567890"}, headers=h)
        assert by_path.status_code == by_body.status_code == 200, by_path.text
        assert by_path.json() == by_body.json()
        assert by_path.json()["registered"] is True
        assert client.get("/v1/callers/hello", headers=h).status_code == 422
        assert client.get("/v1/callers/081200000000", headers=keys["planner"]).status_code == 403
        assert client.get("/v1/callers/081200000000").status_code == 401
        doc = client.get("/openapi.json").json()
        assert doc["paths"]["/v1/callers/{phone}"]["get"]["deprecated"] is True
        assert not doc["paths"]["/v1/callers/lookup"]["post"].get("deprecated", False)


def test_intake_registers_but_cannot_read_change_or_delete_the_registry(
    client: TestClient, keys: dict, points: list
) -> None:
    """Least privilege: any intake key could once dump or wipe the whole registry."""
    intake, admin = keys["intake"], keys["admin"]
    created = client.post("/v1/subscribers", json=_body(points), headers=intake)
    assert created.status_code == 201, created.text
    sub_id = created.json()["id"]
    url = f"/v1/subscribers/{sub_id}"
    assert client.get("/v1/subscribers", headers=intake).status_code == 403
    assert client.get(url, headers=intake).status_code == 403
    assert client.patch(url, json={"name": "x"}, headers=intake).status_code == 403
    assert client.delete(url, headers=intake).status_code == 403
    listed = client.get("/v1/subscribers", headers=admin)
    assert listed.status_code == 200 and [s["id"] for s in listed.json()["items"]] == [sub_id]
    assert client.get(url, headers=admin).status_code == 200
    assert client.patch(url, json={"name": "Budi"}, headers=admin).json()["name"] == "Budi"
    assert client.delete(url, headers=admin).status_code == 204
    assert client.get(url, headers=admin).status_code == 404


#: Served only with ``GEO_ROUTER_LEGACY_CALLER_PATH=true`` (covered above and in test_api_auth).
LEGACY_ONLY = {("GET", "/v1/callers/{phone}")}


def _expected_roles() -> list[dict[str, str]]:
    with ROLE_TABLE.open() as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if r["path"].startswith(("/v1/subscribers", "/v1/callers"))]


def test_role_table_rows_exist() -> None:
    paths = {(r["method"], r["path"]) for r in _expected_roles()}
    assert paths == {
        ("POST", "/v1/subscribers"),
        ("GET", "/v1/subscribers"),
        ("GET", "/v1/subscribers/{subscriber_id}"),
        ("PATCH", "/v1/subscribers/{subscriber_id}"),
        ("DELETE", "/v1/subscribers/{subscriber_id}"),
        ("POST", "/v1/subscribers/import"),
        ("POST", "/v1/subscribers/erase"),
        ("POST", "/v1/callers/lookup"),
        ("GET", "/v1/callers/{phone}"),
    }


def test_roles_match_role_table(client: TestClient, keys: dict, points: list) -> None:
    sub_id = client.post("/v1/subscribers", json=_body(points), headers=keys["admin"]).json()["id"]
    lon, lat = points[0]
    requests = {
        ("POST", "/v1/subscribers"): {"json": _body(points, phone="0812 7777 0000")},
        ("GET", "/v1/subscribers"): {},
        ("GET", "/v1/subscribers/{subscriber_id}"): {},
        ("PATCH", "/v1/subscribers/{subscriber_id}"): {"json": {"name": "x"}},
        ("DELETE", "/v1/subscribers/{subscriber_id}"): {},
        ("POST", "/v1/subscribers/import"): {
            "content": f"phone,lon,lat\n081277770001,{lon},{lat}\n",
            "headers": {"content-type": "text/csv"},
        },
        ("POST", "/v1/subscribers/erase"): {"json": {"phone": "081277779999"}},
        ("POST", "/v1/callers/lookup"): {"json": {"phone": "081200000000"}},
    }
    for row in _expected_roles():
        method, path = row["method"], row["path"]
        if (method, path) in LEGACY_ONLY:
            continue  # not a route with the default settings
        url = path.replace("{subscriber_id}", "does-not-exist").replace("{phone}", "081200000000")
        kwargs = requests[(method, path)]
        for who in ("public", "intake", "planner", "analyst", "admin"):
            headers = {**kwargs.get("headers", {}), **(keys[who] if who != "public" else {})}
            extra = {k: v for k, v in kwargs.items() if k != "headers"}
            r = client.request(method, url, headers=headers, **extra)
            allowed = r.status_code not in (401, 403)
            assert allowed == (row[who] == "y"), (method, path, who, r.status_code, r.text)
            if path == "/v1/subscribers" and method == "POST" and allowed:
                client.delete(f"/v1/subscribers/{r.json()['id']}", headers=keys["admin"])
    assert client.get(f"/v1/subscribers/{sub_id}", headers=keys["admin"]).status_code == 200


def test_openapi_documents_operations(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    ops = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    assert {
        "create_subscriber",
        "list_subscribers",
        "get_subscriber",
        "update_subscriber",
        "delete_subscriber",
        "import_subscribers",
        "erase_subscriber",
        "lookup_caller",
    } <= ops


def test_erase_on_request(client: TestClient, keys: dict, points: list) -> None:
    """POST /v1/subscribers/erase: the number in the body, admin only; afterwards the number
    is unknown and its reports stay, without it."""
    created = client.post("/v1/subscribers", json=_body(points), headers=keys["admin"]).json()
    report = {"category": "waste", "channel": "call", "reporter_phone": "0812-3456-7890"}
    filed = client.post("/v1/reports", json=report, headers=keys["admin"])
    assert filed.status_code == 201, filed.text
    body = {"phone": "+62 812 3456 7890"}
    for role in ("intake", "analyst", "planner"):
        refused = client.post("/v1/subscribers/erase", json=body, headers=keys[role])
        assert refused.status_code == 403, role
    r = client.post("/v1/subscribers/erase", json=body, headers=keys["admin"])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "subscriber_id": created["id"],
        "reports_erased": 1,
        "idempotency_keys_deleted": 0,
    }
    assert "7890" not in str(r.request.url)
    lookup = client.post("/v1/callers/lookup", json=body, headers=keys["admin"]).json()
    assert lookup["registered"] is False and lookup["nuisance"]["reports_made"] == 0
    kept = client.get(f"/v1/reports/{filed.json()['id']}", headers=keys["admin"]).json()
    assert kept["category"] == "waste" and kept["zones"] == filed.json()["zones"]
    assert "reporter_phone" not in kept and kept["lon"] is None
    again = client.post("/v1/subscribers/erase", json=body, headers=keys["admin"]).json()
    assert again == {"subscriber_id": None, "reports_erased": 0, "idempotency_keys_deleted": 0}
    by_id = client.post("/v1/subscribers/erase", json={"id": created["id"]}, headers=keys["admin"])
    assert by_id.status_code == 404
    for bad in ({}, {"id": "x", "phone": "0812"}, {"phone": "12"}, {"name": "Siti"}):
        problem = client.post("/v1/subscribers/erase", json=bad, headers=keys["admin"])
        assert problem.status_code == 422, (bad, problem.text)
        assert problem.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("value", [True, "107.6"])
def test_subscriber_coordinates_are_json_numbers(
    client: TestClient, keys: dict, points: list, value: Any
) -> None:
    body = _body(points, phone="0812 7777 1234")
    body["location"]["lon"] = value
    r = client.post("/v1/subscribers", json=body, headers=keys["intake"])
    assert r.status_code == 422, r.text
    assert "location.lon" in r.text and "must be a number" in r.text
