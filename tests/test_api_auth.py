"""API keys and roles: the role table covers every route, and every route obeys it."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import extract_key, is_loopback_host
from api.settings import AppSettings
from geo_router.store import Store

ROLE_TABLE = Path(__file__).parent / "data" / "role_table.csv"
ROLES = ("intake", "planner", "analyst", "admin")
UNDOCUMENTED = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
#: Rows of routes served only with ``GEO_ROUTER_LEGACY_CALLER_PATH=true`` (off by default).
LEGACY_ONLY = {("GET", "/v1/callers/{phone}")}


def _table() -> list[dict[str, str]]:
    with ROLE_TABLE.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _app_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route, flattening included routers; HEAD folded into GET."""
    out = set()
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path
        if path is None or path in UNDOCUMENTED or ctx.methods is None:
            continue  # mounts (static files) have no methods
        out |= {(m, path) for m in ctx.methods if m != "HEAD"}
    return out


@pytest.fixture(scope="module")
def keyed(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An app with one key per role, plus a revoked key; every optional route switched on."""
    settings = AppSettings.of(
        data_dir=tmp_path_factory.mktemp("api_auth"), legacy_caller_path=True, _env_file=None
    )
    keys: dict[str, str] = {}
    with Store.open(settings.store) as store:
        for role in ROLES:
            channel = "call" if role == "intake" else None
            keys[role], _ = store.keys.create(role, f"test-{role}", channel=channel)
        revoked, record = store.keys.create("admin", "revoked-admin")
        store.keys.revoke(record.id)
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        yield {"client": client, "keys": keys, "revoked": revoked, "app": app}


def test_role_table_lists_every_route_and_nothing_else(keyed: dict[str, Any]) -> None:
    table = {(row["method"], row["path"]) for row in _table()}
    routes = _app_routes(keyed["app"])
    assert not routes - table, f"routes missing from {ROLE_TABLE.name}: {sorted(routes - table)}"
    assert not table - routes, f"rows for routes that do not exist: {sorted(table - routes)}"
    for row in _table():
        for col in ("public", *ROLES):
            assert row[col] in {"y", "n"}, (row, col)


def test_default_app_serves_the_table_without_the_legacy_rows(tmp_path: Path) -> None:
    """With default settings the legacy caller path is not a route at all."""
    app = create_app(AppSettings.of(data_dir=tmp_path, _env_file=None))
    table = {(row["method"], row["path"]) for row in _table()}
    assert _app_routes(app) == table - LEGACY_ONLY


def _fill(path: str, demo_router: Any) -> str:
    """Plausible values for path parameters (a known zone for collections)."""
    values = {
        "collection_id": "kelurahan",
        "feature_id": str(demo_router.snapshot.layers["kelurahan"].ids[0]),
        "phone": "+6281234567890",
        "fmt": "json",
        "path": "map.js",
    }
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "unknown-id"), path)


def _call(client: TestClient, method: str, url: str, headers: dict[str, str]) -> int:
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    return client.request(method, url, json=body, headers=headers).status_code


@pytest.mark.parametrize("row", _table(), ids=lambda r: f"{r['method']} {r['path']}")
def test_route_obeys_the_role_table(
    keyed: dict[str, Any], demo_router: Any, row: dict[str, str]
) -> None:
    client: TestClient = keyed["client"]
    url = _fill(row["path"], demo_router)
    method = row["method"]
    public = row["public"] == "y"
    for role in ROLES:
        header = {"Authorization": f"Bearer {keyed['keys'][role]}"}
        status = _call(client, method, url, header)
        if row[role] == "y":
            assert status not in (401, 403), (role, method, url, status)
        else:
            assert status == 403, (role, method, url, status)
    for label, headers in (
        ("no key", {}),
        ("revoked key", {"X-API-Key": keyed["revoked"]}),
    ):
        status = _call(client, method, url, headers)
        if public:
            assert status not in (401, 403), (label, method, url, status)
        else:
            assert status == 401, (label, method, url, status)


def test_401_carries_www_authenticate_and_403_names_the_role(keyed: dict[str, Any]) -> None:
    client: TestClient = keyed["client"]
    r = client.get("/v1/info")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json"
    r = client.get(
        "/v1/reports",
        headers={"X-API-Key": keyed["keys"]["planner"]},
    )
    assert r.status_code == 403
    assert "planner" in r.json()["detail"]
    wrong = client.get("/v1/info", headers={"Authorization": "Bearer gr_not-a-key"})
    assert wrong.status_code == 401


#: A loopback peer and a peer from another machine (TestClient's default is "testclient").
LOCAL_PEER = ("127.0.0.1", 50000)
REMOTE_PEER = ("203.0.113.5", 1234)


def _open_app(demo_router: Any, data_dir: Path, host: str = "127.0.0.1") -> Any:
    return create_app(
        AppSettings.of(data_dir=data_dir, host=host, _env_file=None),
        city_loader=lambda s: (demo_router, None),
    )


def test_open_mode_only_on_loopback(demo_router: Any, tmp_path: Path) -> None:
    loopback = _open_app(demo_router, tmp_path / "a")
    with TestClient(loopback, client=LOCAL_PEER) as client:
        loopback.state.ready_event.wait(60)
        assert client.post("/v1/route/batch", json={"points": []}).status_code == 200
    exposed = _open_app(demo_router, tmp_path / "b", host="0.0.0.0")
    with TestClient(exposed, client=LOCAL_PEER) as client:
        exposed.state.ready_event.wait(60)
        assert client.get("/v1/info").status_code == 401
        assert client.get("/livez").status_code == 200


def test_open_mode_serves_only_a_loopback_peer(demo_router: Any, tmp_path: Path) -> None:
    """No key ever, loopback server: a peer from another machine still gets 401."""
    app = _open_app(demo_router, tmp_path)
    with TestClient(app, client=REMOTE_PEER) as remote:
        assert app.state.ready_event.wait(60), app.state.load_error
        for method, url in (("GET", "/v1/subscribers"), ("GET", "/v1/info")):
            r = remote.request(method, url)
            assert r.status_code == 401, (url, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "geo-router keys create" in r.json()["detail"]
        r = remote.post("/v1/subscribers/import", files={"file": ("a.csv", b"phone\n")})
        assert r.status_code == 401
        assert remote.get("/livez").status_code == 200
    with TestClient(app, client=LOCAL_PEER) as local:
        assert local.get("/v1/subscribers").status_code == 200
    with TestClient(app, client=("::1", 1234)) as local6:
        assert local6.get("/v1/info").status_code == 200


def test_revoking_the_last_key_never_reopens_the_service(demo_router: Any, tmp_path: Path) -> None:
    """Once a key has existed, a loopback peer without a key gets 401, not admin rights."""
    settings = AppSettings.of(data_dir=tmp_path, _env_file=None)
    with Store.open(settings.store) as store:
        key, record = store.keys.create("admin", "only-admin")
        assert store.keys.count_all() == 1
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(app, client=LOCAL_PEER) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        assert client.get("/v1/subscribers", headers={"X-API-Key": key}).status_code == 200
        app.state.store.keys.revoke(record.id)
        assert app.state.store.keys.count_all() == 1  # revoking keeps the row
        for headers in ({}, {"X-API-Key": key}, {"Authorization": "Bearer gr_not-a-key"}):
            assert client.get("/v1/subscribers", headers=headers).status_code == 401, headers
            r = client.post(
                "/v1/subscribers/import", files={"file": ("a.csv", b"phone\n")}, headers=headers
            )
            assert r.status_code == 401, (headers, r.text)
    # A fresh app over the same store (a restart) stays closed as well.
    again = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(again, client=LOCAL_PEER) as client:
        assert again.state.ready_event.wait(60), again.state.load_error
        assert not again.state.auth.open_mode()
        assert client.get("/v1/subscribers").status_code == 401
        assert (
            client.post("/v1/subscribers/import", files={"file": ("a.csv", b"x")}).status_code
            == 401
        )


def test_key_headers_and_loopback_hosts() -> None:
    assert extract_key({"authorization": "Bearer abc"}) == "abc"
    assert extract_key({"authorization": "bearer  abc "}) == "abc"
    assert extract_key({"x-api-key": "k1"}) == "k1"
    assert extract_key({"authorization": "Basic Zm9v"}) is None
    assert extract_key({}) is None
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert is_loopback_host(host), host
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        assert not is_loopback_host(host), host
