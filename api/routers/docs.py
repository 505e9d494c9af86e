"""Interactive API docs (Swagger UI at ``/docs``, ReDoc at ``/redoc``) with no CDN.

FastAPI's own pages load Swagger UI, ReDoc, a favicon and Google Fonts from CDNs, so they are
blank on a machine without internet access. The app turns them off (``docs_url=None``,
``redoc_url=None``) and includes this router instead: the same pages, built with FastAPI's
``get_swagger_ui_html`` / ``get_redoc_html``, whose assets come from the ``fastapi-offline``
package's static folder and are served by the service under ``/vendor/docs/``. A
Content-Security-Policy keeps the pages from loading anything off-origin.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response

DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"
VENDOR_PREFIX = "/vendor/docs"
#: Swagger UI 5 and ReDoc bundles shipped by ``fastapi-offline`` (only its files are used).
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
#: The only files served under ``/vendor/docs/`` (name: media type); nothing else is reachable.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
    "redoc.standalone.js": "text/javascript",
}
#: ReDoc's side menu always shows Redocly's logo from their CDN; an empty image instead (the
#: logo hides itself when its image fails). The CSP below would block the request anyway.
_PATCHES = {
    "redoc.standalone.js": [(b'"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'"data:,"')],
}
_VENDOR_MAX_AGE = "public, max-age=86400"  # pinned by the installed package's version
#: Swagger UI's validator badge would load an image from validator.swagger.io for public hosts.
_SWAGGER_PARAMETERS = {"validatorUrl": None}
#: The pages may load nothing off-origin. This also stops the one URL the bundles hard-code:
#: ReDoc's "API docs by Redocly" logo from cdn.redoc.ly (it hides itself when blocked).
#: Swagger UI starts from an inline script; ReDoc styles inline and searches in a blob: worker.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

router = APIRouter(include_in_schema=False)


def _root_path(request: Request) -> str:
    # Behind a proxy that mounts the service under a prefix, every URL the page loads needs it.
    return str(request.scope.get("root_path", "")).rstrip("/")


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def _openapi_url(request: Request, root: str) -> str:
    openapi_url: str | None = request.app.openapi_url
    if not openapi_url:
        raise HTTPException(status_code=404, detail="the OpenAPI document is turned off")
    return root + openapi_url


@router.get(DOCS_URL)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over this service's OpenAPI document."""
    root = _root_path(request)
    app = request.app
    page = get_swagger_ui_html(
        openapi_url=_openapi_url(request, root),
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{VENDOR_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{VENDOR_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{root}{VENDOR_PREFIX}/favicon.png",
        oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters={**_SWAGGER_PARAMETERS, **(app.swagger_ui_parameters or {})},
    )
    return _local_only(page)


@router.get(OAUTH2_REDIRECT_URL)
def swagger_ui_oauth2_redirect() -> HTMLResponse:
    """The page Swagger UI's OAuth2 flows return to."""
    return _local_only(get_swagger_ui_oauth2_redirect_html())


@router.get(REDOC_URL)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc over this service's OpenAPI document (no Google Fonts)."""
    root = _root_path(request)
    page = get_redoc_html(
        openapi_url=_openapi_url(request, root),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{VENDOR_PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{VENDOR_PREFIX}/favicon.png",
        with_google_fonts=False,
    )
    return _local_only(page)


@lru_cache(maxsize=len(ASSETS))
def asset_bytes(name: str) -> bytes:
    """The content served for one of :data:`ASSETS` (patched where :data:`_PATCHES` says)."""
    content = (ASSETS_DIR / name).read_bytes()
    for old, new in _PATCHES.get(name, []):
        content = content.replace(old, new)
    return content


@router.get(VENDOR_PREFIX + "/{name}")
def docs_asset(name: str) -> Response:
    """One of the docs pages' scripts, stylesheet or favicon."""
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail="no such file")
    headers = {"Cache-Control": _VENDOR_MAX_AGE, "X-Content-Type-Options": "nosniff"}
    return Response(asset_bytes(name), media_type=ASSETS[name], headers=headers)
