"""End to end: the real service on loopback, its pages in headless Chromium (Playwright).

Debian's chromium drives the pages (never ``playwright install``); Leaflet and the API docs'
assets come from Python packages, so the pages load nothing but the service's own URLs. Without
Chromium or the playwright package these tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = Path(os.environ.get("GEO_ROUTER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ZONE_PATHS = ".leaflet-overlay-pane path.zone"
FACILITY_PATHS = ".leaflet-facilities-pane path.facility"
READY_TIMEOUT_S = 120.0
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _require_browser_stack() -> None:
    pytest.importorskip("playwright.sync_api", reason="the playwright pip package is missing")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base: str, server: Any, thread: threading.Thread) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if not thread.is_alive():
            pytest.fail(f"the service stopped during startup ({last})")
        try:
            response = httpx.get(f"{base}/readyz", timeout=2.0)
            if response.status_code == 200:
                return
            last = f"/readyz {response.status_code}: {response.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.25)
    server.should_exit = True
    pytest.fail(f"the service was not ready within {READY_TIMEOUT_S:.0f} s: {last}")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app (demo city, empty tmp data dir) under uvicorn in a thread on loopback."""
    _require_browser_stack()
    import uvicorn

    from api.app import create_app
    from api.settings import AppSettings

    port = _free_port()
    settings = AppSettings.of(
        host="127.0.0.1", port=port, data_dir=tmp_path_factory.mktemp("geo_router_data")
    )
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="map-browser-service", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server, thread)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def browser(service: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught exceptions raised in the page (each test asserts there are none)."""
    return []


@pytest.fixture
def requested() -> list[str]:
    """Every URL the page requested (documents, scripts, styles, images, fetches)."""
    return []


@pytest.fixture
def page(browser: Any, page_errors: list[str], requested: list[str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.on("request", lambda request: requested.append(request.url))
    yield page
    context.close()


def _off_origin(requested: list[str], base: str) -> list[str]:
    """The requested URLs that left the service (inline data: and blob: URLs stay local)."""
    local = (f"{base}/", "data:", "blob:", "about:")
    return [url for url in requested if not url.startswith(local)]


def _save_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=False)
    if os.environ.get("GEO_ROUTER_ARTIFACTS"):
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(shot, ARTIFACTS / name)
    return shot


def _collection_sizes(base: str) -> dict[str, int]:
    listing = httpx.get(f"{base}/v1/collections", timeout=10).json()
    sizes = {}
    for collection in listing["collections"]:
        items = httpx.get(
            f"{base}/v1/collections/{collection['id']}/items", params={"limit": 1000}, timeout=30
        ).json()
        sizes[collection["id"]] = len(items["features"])
    return sizes


def _inside_point(base: str, layer: str = "kelurahan") -> tuple[float, float]:
    """A point well inside the first zone of ``layer`` (from the service's own collection)."""
    from shapely.geometry import shape
    from shapely.ops import polylabel

    items = httpx.get(
        f"{base}/v1/collections/{layer}/items", params={"limit": 1}, timeout=10
    ).json()
    polygon = shape(items["features"][0]["geometry"])
    # The pole of inaccessibility keeps the click far from every boundary (no tie on a pixel).
    part = (
        max(polygon.geoms, key=lambda g: g.area) if polygon.geom_type == "MultiPolygon" else polygon
    )
    point = polylabel(part, tolerance=1e-6)
    return round(point.x, 6), round(point.y, 6)


def _click_lonlat(page: Any, lon: float, lat: float) -> None:
    """Click the map where (lon, lat) is drawn, centred and zoomed in first."""
    # Braces: return nothing, as serializing the returned Leaflet map would take minutes.
    page.evaluate(
        "([lat, lon]) => { geoRouterMap.setView([lat, lon],"
        " Math.max(geoRouterMap.getZoom(), 14), {animate: false}); }",
        [lat, lon],
    )
    xy = page.evaluate(
        "([lat, lon]) => { const p = geoRouterMap.latLngToContainerPoint([lat, lon]);"
        " return [p.x, p.y]; }",
        [lat, lon],
    )
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])


def test_page_draws_layers_and_routes_a_click(
    service: str, page: Any, page_errors: list[str], requested: list[str], tmp_path: Path
) -> None:
    sizes = _collection_sizes(service)
    page.goto(f"{service}/map")
    page.wait_for_selector("body[data-ready='yes']", timeout=30_000)

    assert int(page.evaluate("document.body.dataset.layers")) == len(sizes)
    zone_paths = page.locator(ZONE_PATHS).count()
    facility_paths = page.locator(FACILITY_PATHS).count()
    assert zone_paths >= sum(n for c, n in sizes.items() if c in {"kelurahan", "kecamatan"})
    assert facility_paths >= 1
    assert page.locator("#layer-toggles input[type=checkbox]").count() == len(sizes)
    info = httpx.get(f"{service}/v1/info", timeout=10).json()
    assert page.locator("#category option").count() == 1 + len(info["categories"])
    assert info["city"] in page.locator("header").inner_text()

    lon, lat = _inside_point(service)
    expected = httpx.get(f"{service}/v1/route", params={"lon": lon, "lat": lat}, timeout=10).json()
    kelurahan = expected["zones"]["kelurahan"]
    assert kelurahan["status"] in {"inside", "near_boundary"}

    _click_lonlat(page, lon, lat)
    page.wait_for_selector("body[data-route='done']", timeout=15_000)
    panel = page.locator("#result").inner_text()
    assert (kelurahan["name"] or kelurahan["zone_id"]) in panel
    for responders in expected["responders"].values():
        if responders:
            assert (responders[0]["name"] or responders[0]["facility_id"]) in panel
    n_responders = sum(len(v) for v in expected["responders"].values())
    assert page.locator("path.responder-line").count() == n_responders
    assert page.locator("path.responder-line.nearest").count() == sum(
        1 for v in expected["responders"].values() if v
    )
    # The form shows the clicked point in GeoJSON order.
    assert abs(float(page.input_value("#lon")) - lon) < 1e-3
    assert abs(float(page.input_value("#lat")) - lat) < 1e-3

    shot = _save_screenshot(page, tmp_path, "map_page.png")
    assert shot.stat().st_size > 10_000
    # Toggling a layer off removes its paths from the map.
    page.uncheck("#toggle-kelurahan")
    assert page.locator(".leaflet-overlay-pane path.zone-kelurahan").count() == 0
    assert not page_errors
    # Leaflet came from the service (xstatic-leaflet), and nothing else left it either.
    assert f"{service}/vendor/leaflet/leaflet.js" in requested
    assert f"{service}/vendor/leaflet/leaflet.css" in requested
    assert not _off_origin(requested, service)


def test_keyboard_only_routing(service: str, page: Any, page_errors: list[str]) -> None:
    lon, lat = _inside_point(service)
    page.goto(f"{service}/map")
    page.wait_for_selector("body[data-ready='yes']", timeout=30_000)
    page.focus("#lon")
    page.keyboard.type(f"{lon}, {lat}")  # a pasted pair in the first box is split
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-route='done']", timeout=15_000)
    assert page.input_value("#lat") == str(lat)
    # Focus the map and press Enter: the map centre is routed.
    page.focus("#map")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-route='done']", timeout=15_000)
    assert page.locator("#result table.zones tbody tr").count() >= 1
    assert not page_errors


def test_when_leaflet_does_not_load_typed_routing_still_works(
    service: str, page: Any, page_errors: list[str], tmp_path: Path
) -> None:
    # Leaflet always ships with the service now; a proxy or extension can still block it.
    page.route("**/vendor/leaflet/**", lambda route: route.abort())
    lon, lat = _inside_point(service)
    page.goto(f"{service}/map")
    page.wait_for_selector("body[data-ready='no-map']", timeout=30_000)
    assert page.locator("#map").is_hidden()
    assert "Leaflet did not load" in page.locator("#layers-empty").inner_text()
    page.fill("#lon", str(lon))
    page.fill("#lat", str(lat))
    page.click("#route-button")
    page.wait_for_selector("body[data-route='done']", timeout=15_000)
    assert page.locator("#result table.zones tbody tr").count() >= 1
    _save_screenshot(page, tmp_path, "map_page_no_leaflet.png")
    assert not page_errors


def test_api_docs_render_with_no_outside_request(
    service: str, page: Any, page_errors: list[str], requested: list[str], tmp_path: Path
) -> None:
    # The pages' CSP would block an off-origin load and log it here: there must be none.
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{service}/docs")
    # Swagger UI has fetched /openapi.json and drawn an operation block per endpoint.
    route_op = page.locator(".opblock .opblock-summary-path[data-path='/v1/route']")
    route_op.first.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() >= 10
    assert page.locator(".opblock-tag[data-tag='routing']").count() == 1
    assert f"{service}/vendor/docs/swagger-ui-bundle.js" in requested
    assert f"{service}/openapi.json" in requested
    _save_screenshot(page, tmp_path, "docs_swagger_ui.png")

    page.goto(f"{service}/redoc")
    # ReDoc renders a section per operation once it has read the document.
    page.wait_for_selector("[data-section-id*='operation/route_point']", timeout=30_000)
    assert "geo_router" in page.locator("h1").first.inner_text()
    assert f"{service}/vendor/docs/redoc.standalone.js" in requested
    _save_screenshot(page, tmp_path, "docs_redoc.png")

    assert not page_errors
    assert not console_errors
    assert not _off_origin(requested, service), _off_origin(requested, service)
