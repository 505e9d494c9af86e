"""The call-taker map page: HTML, its own JS/CSS, and Leaflet from the ``xstatic-leaflet`` wheel.

Nothing is fetched from a CDN: Leaflet is a Python dependency (``xstatic-leaflet`` on PyPI, so
``pip install`` brings it wherever the service goes) and the service serves its files itself
under ``/vendor/leaflet/``.
"""

from __future__ import annotations

import json
import mimetypes
from functools import lru_cache
from pathlib import Path
from typing import Any

import xstatic.pkg.leaflet
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from api.deps import app_settings_of
from api.settings import AppSettings

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
#: Leaflet's distribution files (leaflet.js, leaflet.css, images/), served as /vendor/leaflet/.
LEAFLET_DIR = Path(xstatic.pkg.leaflet.BASE_DIR)
LEAFLET_VERSION: str = xstatic.pkg.leaflet.VERSION
STATIC_MAX_AGE = "no-cache"  # our own files change with the code; revalidate every time
VENDOR_MAX_AGE = "public, max-age=86400"  # pinned by the installed package's version

# Module scripts are refused unless served with a JavaScript MIME type, and some systems'
# mimetypes tables lack these; register them once.
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("application/json", ".map")

router = APIRouter(tags=["map"])


@lru_cache(maxsize=1)
def _page() -> str:
    return (STATIC_DIR / "map.html").read_text(encoding="utf-8")


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
    headers = {
        "Cache-Control": STATIC_MAX_AGE,
        "Content-Security-Policy": _content_security_policy(app_settings_of(request).api.tile_url),
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(_page(), headers=headers)


def map_config(settings: AppSettings) -> dict[str, Any]:
    """What the page needs to know about this deployment (no secrets).

    Parameters
    ----------
    settings
        The app's settings (only the tile URL and the default ``k`` are exposed).
    """
    return {"tile_url": settings.api.tile_url, "default_k": settings.routing.default_k}


@router.get("/map/config.json", include_in_schema=False)
def map_config_json(request: Request) -> Response:
    """The map page's configuration: tile URL (none by default) and the default ``k``."""
    return Response(
        json.dumps(map_config(app_settings_of(request))),
        media_type="application/json",
        headers={"Cache-Control": "no-cache"},
    )


def file_inside(base: Path, relative: str) -> Path:
    """The regular file ``relative`` under ``base``, or a 404.

    ``..``, absolute paths and symlinks out of ``base`` are refused (resolved first, then
    checked for containment); names the file system cannot take (a NUL byte, too long) are
    404s too, never 500s.

    Parameters
    ----------
    base
        The folder being served.
    relative
        The URL's path below the folder.
    """
    try:
        root = base.resolve()
        target = (root / relative).resolve()
        found = target.is_relative_to(root) and target.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise HTTPException(status_code=404, detail="no such file")
    return target


@router.get("/static/{path:path}", include_in_schema=False)
def static_file(path: str) -> FileResponse:
    """Serve the page's own JS/CSS from ``api/static``."""
    return FileResponse(file_inside(STATIC_DIR, path), headers={"Cache-Control": STATIC_MAX_AGE})


@router.get("/vendor/leaflet/{path:path}", include_in_schema=False)
def leaflet_file(path: str) -> FileResponse:
    """Serve Leaflet's distribution files from the ``xstatic-leaflet`` package."""
    return FileResponse(file_inside(LEAFLET_DIR, path), headers={"Cache-Control": VENDOR_MAX_AGE})
