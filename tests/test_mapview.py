"""The map page routes: HTML, own assets, Leaflet from node_modules, the missing-Leaflet hint."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.routers import mapview
from geo_router.settings import Settings


def _app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI()
    app.include_router(mapview.router)
    if settings is not None:
        app.state.settings = settings
    return app


@pytest.fixture
def fake_leaflet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in Leaflet dist folder (the real one comes from npm and may be absent)."""
    folder = tmp_path / "leaflet-dist"
    folder.mkdir()
    (folder / "leaflet.js").write_text("window.L = {version: 'fake'};\n")
    (folder / "leaflet.css").write_text(".leaflet-container{}\n")
    (tmp_path / "secret.txt").write_text("outside the vendor folder")
    monkeypatch.setenv(mapview.LEAFLET_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def no_leaflet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the service at an empty folder, as in a checkout where `npm ci` was never run."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(mapview.LEAFLET_DIR_ENV, str(empty))
    return empty


@pytest.fixture
def client() -> TestClient:
    return TestClient(_app(Settings()))


@pytest.mark.parametrize("path", ["/", "/map"])
def test_page_is_html_with_leaflet_and_module(
    client: TestClient, fake_leaflet: Path, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<script src="/vendor/leaflet/leaflet.js"></script>' in page
    assert 'href="/vendor/leaflet/leaflet.css"' in page
    assert '<script type="module" src="/static/map.js"></script>' in page
    assert "npm ci" not in page
    # GeoJSON order is explicit in the form: longitude first.
    assert page.index('id="lon"') < page.index('id="lat"')
    assert "longitude first" in page


def test_page_has_no_cdn_or_external_urls(client: TestClient, fake_leaflet: Path) -> None:
    page = client.get("/").text
    script = client.get("/static/map.js").text
    for text in (page, script):
        assert "http://" not in text
        assert "https://" not in text
    policy = client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "https:" not in policy


def test_own_assets_are_served_as_js_and_css(client: TestClient) -> None:
    js = client.get("/static/map.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "/v1/route" in js.text
    assert "Authorization" in js.text
    css = client.get("/static/map.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


def test_leaflet_files_are_served_from_the_dist_folder(
    client: TestClient, fake_leaflet: Path
) -> None:
    response = client.get("/vendor/leaflet/leaflet.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "fake" in response.text
    assert client.get("/vendor/leaflet/leaflet.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    "path",
    [
        "/vendor/leaflet/../secret.txt",
        "/vendor/leaflet/%2e%2e/secret.txt",
        "/vendor/leaflet/nope.js",
        "/static/../routers/mapview.py",
        "/static/%2e%2e/routers/mapview.py",
        "/static/missing.js",
    ],
)
def test_paths_outside_the_folders_are_not_served(
    client: TestClient, fake_leaflet: Path, path: str
) -> None:
    assert client.get(path).status_code == 404


def test_missing_leaflet_page_says_how_to_install(client: TestClient, no_leaflet: Path) -> None:
    response = client.get("/map")
    assert response.status_code == 200
    page = response.text
    assert 'id="leaflet-missing"' in page
    assert "npm ci" in page
    assert mapview.LEAFLET_DIR_ENV in page
    assert str(no_leaflet) in page
    assert "/vendor/leaflet/leaflet.js" not in page  # no broken script tag, no blank map
    assert client.get("/vendor/leaflet/leaflet.js").status_code == 404
    config = client.get("/map/config.json").json()
    assert config["leaflet"] is False
    assert "npm ci" in config["leaflet_hint"]


def test_missing_leaflet_is_logged_at_startup(
    no_leaflet: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="geo_router.api.mapview"),
        TestClient(_app(Settings())),
    ):
        pass
    assert any("npm ci" in record.getMessage() for record in caplog.records)


def test_present_leaflet_logs_nothing(fake_leaflet: Path, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="geo_router.api.mapview"),
        TestClient(_app(Settings())),
    ):
        pass
    assert not caplog.records


def test_config_has_no_tiles_by_default(client: TestClient, fake_leaflet: Path) -> None:
    config = client.get("/map/config.json").json()
    assert config == {"tile_url": None, "default_k": 3, "leaflet": True, "leaflet_hint": None}


def test_config_carries_a_configured_tile_url(fake_leaflet: Path) -> None:
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    client = TestClient(_app(Settings(tile_url=url, default_k=5)))
    config = client.get("/map/config.json").json()
    assert config["tile_url"] == url
    assert config["default_k"] == 5
    assert "https:" in client.get("/").headers["content-security-policy"]


def test_settings_fall_back_to_the_environment(
    fake_leaflet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEO_ROUTER_TILE_URL", "http://127.0.0.1:9/{z}/{x}/{y}.png")
    mapview.get_settings.cache_clear()
    try:
        config = TestClient(_app()).get("/map/config.json").json()
    finally:
        mapview.get_settings.cache_clear()
    assert config["tile_url"] == "http://127.0.0.1:9/{z}/{x}/{y}.png"


def test_default_leaflet_dir_is_the_repos_node_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mapview.LEAFLET_DIR_ENV, raising=False)
    expected = Path(__file__).resolve().parent.parent / "node_modules" / "leaflet" / "dist"
    assert mapview.leaflet_dir() == expected


def test_leaflet_is_pinned_exactly_in_package_json() -> None:
    import json

    root = Path(__file__).resolve().parent.parent
    package = json.loads((root / "package.json").read_text())
    lock = json.loads((root / "package-lock.json").read_text())
    pinned = package["dependencies"]["leaflet"]
    assert pinned[0].isdigit(), "leaflet must be pinned to an exact version"
    assert lock["packages"]["node_modules/leaflet"]["version"] == pinned
    assert "node_modules/" in (root / ".gitignore").read_text().split()


def test_traversal_is_refused_even_when_the_url_is_not_normalized(fake_leaflet: Path) -> None:
    from fastapi import HTTPException

    for call, path in [
        (mapview.leaflet_file, "../secret.txt"),
        (mapview.leaflet_file, "/etc/passwd"),
        (mapview.static_file, "../routers/mapview.py"),
    ]:
        with pytest.raises(HTTPException) as raised:
            call(path)
        assert raised.value.status_code == 404
