"""The call-taker map page: HTML, its own JS/CSS, and Leaflet served from ``node_modules``.

Nothing is fetched from a CDN: Leaflet is an npm dependency (``package.json`` pins it) and the
service serves ``node_modules/leaflet/dist`` itself under ``/vendor/leaflet/``. When those files
are missing the page says how to install them instead of showing a blank map.
"""

from __future__ import annotations

import html
import json
import logging
import mimetypes
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from geo_router.settings import Settings, get_settings

logger = logging.getLogger("geo_router.api.mapview")

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
#: Environment variable naming the folder that holds ``leaflet.js`` and ``leaflet.css``.
LEAFLET_DIR_ENV = "GEO_ROUTER_LEAFLET_DIR"
LEAFLET_INSTALL_HINT = (
    "Leaflet is not installed: run `npm ci` in the repository root "
    f"({REPO_ROOT}) or set {LEAFLET_DIR_ENV} to a folder holding leaflet.js and leaflet.css."
)
_LEAFLET_SLOT = "<!--LEAFLET-->"  # in <head>: Leaflet's stylesheet and script
_HINT_SLOT = "<!--LEAFLET_HINT-->"  # over the map: the install hint when Leaflet is missing
_STATIC_MAX_AGE = "no-cache"  # our own files change with the code; revalidate every time
_VENDOR_MAX_AGE = "public, max-age=86400"  # pinned by package-lock.json

# Module scripts are refused unless served with a JavaScript MIME type, and some systems'
# mimetypes tables lack these; register them once.
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("application/json", ".map")


def leaflet_dir() -> Path:
    """Folder served as ``/vendor/leaflet/``: ``$GEO_ROUTER_LEAFLET_DIR`` or the repo's npm copy.

    Returns
    -------
    Path
        ``node_modules/leaflet/dist`` under the repository root unless overridden.
    """
    override = os.environ.get(LEAFLET_DIR_ENV)
    if override:
        return Path(override)
    return REPO_ROOT / "node_modules" / "leaflet" / "dist"


def leaflet_available(folder: Path | None = None) -> bool:
    """Whether Leaflet's script and stylesheet are present.

    Parameters
    ----------
    folder
        Folder to check; :func:`leaflet_dir` when omitted.
    """
    folder = leaflet_dir() if folder is None else folder
    return (folder / "leaflet.js").is_file() and (folder / "leaflet.css").is_file()


@asynccontextmanager
async def _warn_when_leaflet_missing(_app: FastAPI) -> AsyncIterator[None]:
    # A log line at startup so an operator sees the problem before a call-taker does.
    if not leaflet_available():
        logger.warning("map page: %s (looked in %s)", LEAFLET_INSTALL_HINT, leaflet_dir())
    yield


router = APIRouter(lifespan=_warn_when_leaflet_missing, tags=["map"])


def _settings(request: Request) -> Settings:
    # The app keeps the Settings it was built with on app.state; fall back to the environment.
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


@lru_cache(maxsize=1)
def _page_template() -> str:
    return (STATIC_DIR / "map.html").read_text(encoding="utf-8")


def _leaflet_tags() -> str:
    return (
        '<link rel="stylesheet" href="/vendor/leaflet/leaflet.css">\n'
        '  <script src="/vendor/leaflet/leaflet.js"></script>'
    )


def _install_hint_block() -> str:
    root = html.escape(str(REPO_ROOT))
    folder = html.escape(str(leaflet_dir()))
    return (
        '<div id="leaflet-missing" class="install-hint" role="alert">'
        "<strong>The map cannot be drawn: Leaflet is not installed.</strong> "
        f"Run <code>npm ci</code> in the repository root (<code>{root}</code>) and reload, "
        f"or set <code>{LEAFLET_DIR_ENV}</code> to a folder holding leaflet.js and leaflet.css "
        f"(looked in <code>{folder}</code>). Routing by typed coordinates still works.</div>"
    )


def render_map_page(*, leaflet_present: bool) -> str:
    """The page's HTML, with Leaflet's tags or, when Leaflet is missing, the install hint.

    Parameters
    ----------
    leaflet_present
        Whether ``/vendor/leaflet/`` can serve Leaflet.
    """
    page = _page_template()
    if leaflet_present:
        return page.replace(_LEAFLET_SLOT, _leaflet_tags(), 1).replace(_HINT_SLOT, "", 1)
    return page.replace(_LEAFLET_SLOT, "", 1).replace(_HINT_SLOT, _install_hint_block(), 1)


def _content_security_policy(tile_url: str | None) -> str:
    # Tiles are the only thing allowed off-origin, and only when an operator configured them.
    img_src = "'self' data:" + (" https: http:" if tile_url else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src {img_src}; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
@router.get("/map", response_class=HTMLResponse, include_in_schema=False)
def map_page(request: Request) -> HTMLResponse:
    """Serve the call-taker map page."""
    html = render_map_page(leaflet_present=leaflet_available())
    headers = {
        "Cache-Control": _STATIC_MAX_AGE,
        "Content-Security-Policy": _content_security_policy(_settings(request).tile_url),
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(html, headers=headers)


def map_config(settings: Settings, *, leaflet_present: bool) -> dict[str, Any]:
    """What the page needs to know about this deployment (no secrets).

    Parameters
    ----------
    settings
        The service settings (only ``tile_url`` and ``default_k`` are exposed).
    leaflet_present
        Whether Leaflet can be served.
    """
    return {
        "tile_url": settings.tile_url,
        "default_k": settings.default_k,
        "leaflet": leaflet_present,
        "leaflet_hint": None if leaflet_present else LEAFLET_INSTALL_HINT,
    }


@router.get("/map/config.json", include_in_schema=False)
def map_config_json(request: Request) -> Response:
    """The map page's configuration: tile URL (none by default) and Leaflet status."""
    body = map_config(_settings(request), leaflet_present=leaflet_available())
    return Response(
        json.dumps(body), media_type="application/json", headers={"Cache-Control": "no-cache"}
    )


def _file_inside(base: Path, relative: str) -> Path:
    # Resolve first, then check containment: ".." and symlinks out of the folder are refused.
    root = base.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404, detail=f"no such file: {relative}")
    return target


@router.get("/static/{path:path}", include_in_schema=False)
def static_file(path: str) -> FileResponse:
    """Serve the page's own JS/CSS from ``api/static``."""
    target = _file_inside(STATIC_DIR, path)
    return FileResponse(target, headers={"Cache-Control": _STATIC_MAX_AGE})


@router.get("/vendor/leaflet/{path:path}", include_in_schema=False)
def leaflet_file(path: str) -> FileResponse:
    """Serve Leaflet's distribution files from ``node_modules/leaflet/dist``."""
    folder = leaflet_dir()
    if not folder.is_dir():
        raise HTTPException(status_code=404, detail=LEAFLET_INSTALL_HINT)
    target = _file_inside(folder, path)
    return FileResponse(target, headers={"Cache-Control": _VENDOR_MAX_AGE})
