"""Browser pages with no CDN: the map page, Leaflet from ``xstatic-leaflet``, offline API docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from api.app import create_app
from api.routers import docs, mapview
from api.settings import AppSettings, api_settings

EXTERNAL = ("http://", "https://", "//cdn", "fonts.googleapis", "jsdelivr", "unpkg")


def _app(settings: AppSettings | None = None) -> FastAPI:
    app = FastAPI()
    app.include_router(mapview.router)
    if settings is not None:
        app.state.settings = settings
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(_app(AppSettings.of()))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """The whole app, as served (no lifespan: these pages need neither city nor store)."""
    settings = AppSettings.of(data_dir=tmp_path_factory.mktemp("mapview"), _env_file=None)
    return TestClient(create_app(settings))


# ---------- the map page ----------


@pytest.mark.parametrize("path", ["/", "/map"])
def test_page_is_html_with_leaflet_and_module(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<script src="/vendor/leaflet/leaflet.js"></script>' in page
    assert 'href="/vendor/leaflet/leaflet.css"' in page
    assert '<script type="module" src="/static/map.js"></script>' in page
    assert "npm" not in page
    # GeoJSON order is explicit in the form: longitude first.
    assert page.index('id="lon"') < page.index('id="lat"')
    assert "longitude first" in page


def test_page_has_no_cdn_or_external_urls(client: TestClient) -> None:
    page = client.get("/").text
    script = client.get("/static/map.js").text
    for text in (page, script):
        assert "http://" not in text
        assert "https://" not in text
        assert "npm" not in text
    policy = client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "https:" not in policy


def test_own_assets_are_served_as_js_and_css(client: TestClient) -> None:
    js = client.get("/static/map.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "/v1/route" in js.text
    assert "Authorization" in js.text
    assert js.headers["cache-control"] == "no-cache"
    css = client.get("/static/map.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


# ---------- Leaflet from the xstatic-leaflet package ----------


def test_leaflet_comes_from_the_installed_python_package() -> None:
    import xstatic.pkg.leaflet

    assert Path(xstatic.pkg.leaflet.BASE_DIR) == mapview.LEAFLET_DIR
    assert "node_modules" not in mapview.LEAFLET_DIR.parts
    for name in ("leaflet.js", "leaflet.css", "images/marker-icon.png"):
        assert (mapview.LEAFLET_DIR / name).is_file(), name


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("leaflet.js", "text/javascript", b"Leaflet " + mapview.LEAFLET_VERSION.encode()),
        ("leaflet.css", "text/css", b".leaflet-container"),
        ("images/marker-icon.png", "image/png", b"\x89PNG"),
        ("images/layers-2x.png", "image/png", b"\x89PNG"),
    ],
)
def test_leaflet_files_are_served_with_their_types(
    client: TestClient, path: str, content_type: str, marker: bytes
) -> None:
    response = client.get(f"/vendor/leaflet/{path}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == content_type
    assert marker in response.content[:2000]
    assert response.content == (mapview.LEAFLET_DIR / path).read_bytes()
    assert response.headers["cache-control"] == mapview.VENDOR_MAX_AGE


@pytest.mark.parametrize(
    "path",
    [
        "/vendor/leaflet/..%2f..%2fsetup.py",
        "/vendor/leaflet/..%2f__init__.py",  # exists one level up, in the package
        "/vendor/leaflet/%2e%2e%2f__init__.py",
        "/vendor/leaflet/..%2f..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/vendor/leaflet/%2fetc%2fpasswd",
        "/vendor/leaflet/nope.js",
        "/vendor/leaflet/images",  # a folder, not a file
        "/vendor/leaflet/",
        "/vendor/leaflet/leaflet.js%00",
        "/vendor/leaflet/%00",
        "/vendor/leaflet/" + "a" * 5000,
        "/vendor/leaflet/" + "a/" * 3000,
        "/static/../routers/mapview.py",
        "/static/..%2frouters%2fmapview.py",
        "/static/%2e%2e/routers/mapview.py",
        "/static/missing.js",
        "/static/map.js%00.css",
    ],
)
def test_paths_outside_the_folders_or_odd_are_404(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_traversal_is_refused_even_when_the_url_is_not_normalized() -> None:
    for call, path in [
        (mapview.leaflet_file, "../__init__.py"),
        (mapview.leaflet_file, "images/../../__init__.py"),
        (mapview.leaflet_file, "/etc/passwd"),
        (mapview.leaflet_file, "leaflet.js\x00"),
        (mapview.static_file, "../routers/mapview.py"),
    ]:
        with pytest.raises(HTTPException) as raised:
            call(path)
        assert raised.value.status_code == 404


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside")
    served = tmp_path / "served"
    served.mkdir()
    (served / "ok.js").write_text("ok")
    (served / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert mapview.file_inside(served, "ok.js") == (served / "ok.js").resolve()
    with pytest.raises(HTTPException):
        mapview.file_inside(served, "link.txt")


# ---------- the page's configuration ----------


def test_config_has_no_tiles_by_default(client: TestClient) -> None:
    config = client.get("/map/config.json").json()
    assert config == {"tile_url": None, "default_k": 3}


def test_config_carries_a_configured_tile_url() -> None:
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    client = TestClient(_app(AppSettings.of(tile_url=url, default_k=5)))
    config = client.get("/map/config.json").json()
    assert config["tile_url"] == url
    assert config["default_k"] == 5
    assert "https:" in client.get("/").headers["content-security-policy"]


def test_settings_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEO_ROUTER_TILE_URL", "http://127.0.0.1:9/{z}/{x}/{y}.png")
    api_settings.cache_clear()
    try:
        config = TestClient(_app()).get("/map/config.json").json()
    finally:
        api_settings.cache_clear()
    assert config["tile_url"] == "http://127.0.0.1:9/{z}/{x}/{y}.png"


# ---------- /docs and /redoc with local assets ----------


def test_swagger_ui_page_loads_only_local_assets(service: TestClient) -> None:
    response = service.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert f"'/vendor/docs/{asset}'" in page or f'"/vendor/docs/{asset}"' in page, asset
    assert "'/openapi.json'" in page
    assert "'/docs/oauth2-redirect'" in page
    assert '"validatorUrl": null' in page  # no badge image from validator.swagger.io
    for external in EXTERNAL:
        assert external not in page, external


def test_redoc_page_loads_only_local_assets(service: TestClient) -> None:
    response = service.get("/redoc")
    assert response.status_code == 200
    page = response.text
    assert '"/vendor/docs/redoc.standalone.js"' in page
    assert 'spec-url="/openapi.json"' in page
    for external in EXTERNAL:
        assert external not in page, external


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_docs_pages_may_load_nothing_off_origin(service: TestClient, path: str) -> None:
    policy = service.get(path).headers["content-security-policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    for name in ("script-src", "style-src", "img-src", "font-src", "connect-src", "worker-src"):
        sources = directives[name].split()
        assert "'self'" in sources, name
        assert not [s for s in sources if s not in {"'self'", "'unsafe-inline'", "data:", "blob:"}]


def test_oauth2_redirect_page(service: TestClient) -> None:
    response = service.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "oauth2" in response.text.lower()


@pytest.mark.parametrize(
    ("name", "content_type", "marker"),
    [
        ("swagger-ui-bundle.js", "text/javascript", b"SwaggerUIBundle"),
        ("swagger-ui.css", "text/css", b".swagger-ui"),
        ("favicon.png", "image/png", b"\x89PNG"),
        ("redoc.standalone.js", "text/javascript", b"Redoc"),
    ],
)
def test_docs_assets_are_served_with_their_types(
    service: TestClient, name: str, content_type: str, marker: bytes
) -> None:
    response = service.get(f"/vendor/docs/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == content_type
    assert marker in response.content
    assert response.headers["cache-control"].startswith("public")
    original = (docs.ASSETS_DIR / name).read_bytes()
    if name == "redoc.standalone.js":  # Redocly's CDN logo replaced, nothing else
        assert b"cdn.redoc.ly" in original and b"cdn.redoc.ly" not in response.content
        assert abs(len(response.content) - len(original)) < 100
    else:
        assert response.content == original


@pytest.mark.parametrize(
    "path",
    [
        "/vendor/docs/",
        "/vendor/docs/nope.js",
        "/vendor/docs/..%2f__init__.py",
        "/vendor/docs/..%2fcore.py",
        "/vendor/docs/%2e%2e",
        "/vendor/docs/favicon.png%00",
        "/vendor/docs/" + "a" * 5000,
    ],
)
def test_only_the_docs_assets_are_served(service: TestClient, path: str) -> None:
    assert service.get(path).status_code == 404


def test_fastapis_cdn_docs_are_replaced_and_out_of_the_schema(service: TestClient) -> None:
    app = service.app
    assert isinstance(app, FastAPI)
    assert app.docs_url is None and app.redoc_url is None
    served = [(ctx.path, ctx.endpoint) for ctx in iter_route_contexts(app.routes)]
    for path, endpoint in [
        ("/docs", docs.swagger_ui),
        ("/docs/oauth2-redirect", docs.swagger_ui_oauth2_redirect),
        ("/redoc", docs.redoc),
    ]:
        assert [e for p, e in served if p == path] == [endpoint], path
    paths = service.get("/openapi.json").json()["paths"]
    assert "/v1/route" in paths
    assert not [p for p in paths if p.startswith(("/docs", "/redoc", "/vendor", "/static"))]


def test_docs_pages_follow_the_root_path(tmp_path: Path) -> None:
    app = create_app(AppSettings.of(data_dir=tmp_path, _env_file=None))
    client = TestClient(app, root_path="/geo")
    swagger = client.get("/docs").text
    assert 'src="/geo/vendor/docs/swagger-ui-bundle.js"' in swagger
    assert "'/geo/openapi.json'" in swagger
    assert '"/geo/vendor/docs/redoc.standalone.js"' in client.get("/redoc").text
