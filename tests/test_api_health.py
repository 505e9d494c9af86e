"""Liveness, readiness (with a slow loader), metrics, request ids, info and OpenAPI."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_of_demo_city
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AppSettings
from geo_router.store import describe_store, make_engine
from geo_router.store.city_record import recorded_city

#: A loopback peer: open mode (no key ever) serves only this machine.
LOCAL_PEER = ("127.0.0.1", 50000)


@pytest.fixture(scope="module")
def app_client(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = AppSettings.of(data_dir=tmp_path_factory.mktemp("api_health"), _env_file=None)
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(app, client=LOCAL_PEER) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        yield client


def test_readyz_is_503_until_the_slow_loader_finishes(demo_router: Any, tmp_path: Any) -> None:
    gate = threading.Event()

    def slow_loader(settings: AppSettings) -> tuple[Any, None]:
        gate.wait(30)
        return demo_router, None

    app = create_app(AppSettings.of(data_dir=tmp_path, _env_file=None), city_loader=slow_loader)
    with TestClient(app, client=LOCAL_PEER) as client:
        assert client.get("/livez").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert "loading" in r.json()["detail"]
        assert client.get("/v1/route", params={"lon": 107.6, "lat": -6.9}).status_code == 503
        gate.set()
        assert app.state.ready_event.wait(30)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert set(ready.json()["layers"]) == set(demo_router.snapshot.layers)
        assert (
            ready.json()["layers"]["kelurahan"] == demo_router.snapshot.layers["kelurahan"].version
        )


def test_readyz_names_a_failed_load(tmp_path: Any) -> None:
    def broken(settings: AppSettings) -> tuple[Any, None]:
        raise FileNotFoundError("city.toml is missing")

    app = create_app(AppSettings.of(data_dir=tmp_path, _env_file=None), city_loader=broken)
    with TestClient(app, client=LOCAL_PEER) as client:
        app.state.loader_thread.join(10)
        assert client.get("/livez").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503
        assert "city.toml is missing" in r.json()["detail"]


def test_startup_logs_the_store_and_records_the_city(
    demo_router: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="geo_router.api")
    settings = AppSettings.of(data_dir=tmp_path, database_url=None, _env_file=None)
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(app, client=LOCAL_PEER) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        assert client.get("/readyz").status_code == 200
    store_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("store:")]
    assert store_lines == [f"store: {describe_store(settings.store)}"]
    engine = make_engine(settings.store.effective_database_url)
    try:
        record = recorded_city(engine)
    finally:
        engine.dispose()
    assert record is not None and record.name == "Kota Contoh"


def test_a_store_of_another_city_never_becomes_ready(
    demo_router: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    first = create_app(
        AppSettings.of(data_dir=data, database_url=None, _env_file=None),
        city_loader=lambda s: (demo_router, None),
    )
    with TestClient(first, client=LOCAL_PEER):
        assert first.state.ready_event.wait(60)  # the demo city is recorded

    calls: list[AppSettings] = []

    def loader(settings: AppSettings) -> tuple[Any, None]:
        calls.append(settings)
        return demo_router, None

    other = copy_of_demo_city(tmp_path / "other")
    settings = AppSettings.of(data_dir=data, database_url=None, city=other, _env_file=None)
    caplog.set_level(logging.INFO, logger="geo_router.api")
    app = create_app(settings, city_loader=loader)
    with TestClient(app, client=LOCAL_PEER) as client:
        assert client.get("/livez").status_code == 200
        for _ in range(3):
            r = client.get("/readyz")
            assert r.status_code == 503
        detail = r.json()["detail"]
        assert "'Kota Contoh'" in detail and "'Kota Lain'" in detail
        route = client.get("/v1/route", params={"lon": 107.6, "lat": -6.9})
        assert route.status_code == 503 and "'Kota Lain'" in route.json()["detail"]
        assert client.get("/v1/reports").status_code == 503  # nothing reads that store
        assert not app.state.ready_event.is_set()
        assert app.state.store is None  # the other city's store is not used
    assert calls == []  # the city was never loaded
    expected = (
        f"this store ({describe_store(settings.store)}) was created for the city 'Kota Contoh'; "
        "refusing to serve 'Kota Lain' from it. Choose another data dir (GEO_ROUTER_DATA_DIR) "
        "or database (GEO_ROUTER_DATABASE_URL) for 'Kota Lain'."
    )
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [expected]
    assert errors[0].exc_info is None  # one line, no traceback
    assert expected in detail


def test_request_id_is_echoed_or_made(app_client: TestClient) -> None:
    r = app_client.get("/livez", headers={"X-Request-ID": "call-42.a"})
    assert r.headers["x-request-id"] == "call-42.a"
    made = app_client.get("/livez").headers["x-request-id"]
    assert len(made) == 32
    evil = app_client.get("/livez", headers={"X-Request-ID": "x" * 500}).headers["x-request-id"]
    assert evil != "x" * 500
    problem = app_client.get("/nope", headers={"X-Request-ID": "rid-1"}).json()
    assert problem["request_id"] == "rid-1"


def test_metrics_count_requests_by_route_template(app_client: TestClient) -> None:
    app_client.get("/v1/collections/kelurahan")
    app_client.get("/v1/route", params={"lon": 107.6, "lat": -6.9})
    text = app_client.get("/metrics").text
    assert (
        'geo_router_http_requests_total{method="GET",route="/v1/collections/{collection_id}",'
        'status="200"}' in text
    )
    assert 'geo_router_http_request_duration_seconds_bucket{le="0.001",method="GET"' in text
    assert 'geo_router_layer_version_info{kind="layer",name="kelurahan"' in text
    assert "geo_router_ready 1.0" in text


def test_info_lists_city_versions_and_libraries(app_client: TestClient, demo_router: Any) -> None:
    info = app_client.get("/v1/info").json()
    assert info["city"] == demo_router.snapshot.profile.name
    assert info["layers"]["kelurahan"]["count"] == len(demo_router.snapshot.layers["kelurahan"].ids)
    assert info["facilities"]["hospital"]["count"] > 0
    assert {c["code"] for c in info["categories"]} >= {"fire", "crime", "medical"}
    assert set(info["versions"]) >= {"geo_router", "shapely", "geos", "pyproj", "proj", "numpy"}
    assert info["storage"] == "sqlite"


def test_openapi_has_operation_ids_tags_and_docs(app_client: TestClient) -> None:
    doc = app_client.get("/openapi.json").json()
    ops = {
        op["operationId"]: op
        for path in doc["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    }
    for op_id in ("route_point", "route_location", "route_batch", "list_collections", "get_info"):
        assert op_id in ops
    assert ops["route_point"]["tags"] == ["routing"]
    params = {p["name"]: p for p in ops["route_point"]["parameters"]}
    assert params["lon"]["schema"]["maximum"] == 180
    assert "LonLatBody" in doc["components"]["schemas"]
    assert "application/problem+json" in ops["route_batch"]["responses"]["default"]["content"]
    assert app_client.get("/docs").status_code == 200


def test_readyz_degraded_without_a_journal_and_503_once_the_database_is_gone_too(
    demo_router: Any, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    db_dir = tmp_path / "db"
    settings = AppSettings.of(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{db_dir / 'geo.sqlite3'}",
        journal_path=blocker / "journal.bin",  # cannot be created: its folder is a file
        _env_file=None,
    )
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(app, client=LOCAL_PEER) as client:
        assert app.state.ready_event.wait(60)
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert any("no journal" in p and "a-file" in p for p in ready.json()["problems"])
        app.state.store.engine.dispose()
        db_dir.rename(tmp_path / "away")
        db_dir.write_text("")
        gone = client.get("/readyz")
        assert gone.status_code == 503 and "no journal" in gone.json()["detail"]
        assert client.get("/livez").status_code == 200
