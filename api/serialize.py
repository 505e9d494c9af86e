"""HTTP responses of JSON the library already encoded (:mod:`geo_router.encoding`).

The API never re-encodes: handlers get bytes from ``geo_router.encoding`` (or encode plain
dicts with its :func:`~geo_router.encoding.json.dumps`) and return them in a plain
``Response``; FastAPI's default path (``jsonable_encoder`` and pydantic validation of the
response) costs more than routing a point. The shapes are documented through
``responses={200: {"model": ...}}`` instead.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from geo_router.encoding.json import dumps

__all__ = [
    "GEOJSON_MEDIA_TYPE",
    "JSON_MEDIA_TYPE",
    "GeoJSONResponse",
    "ORJSONResponse",
    "geojson_response",
    "json_response",
]

JSON_MEDIA_TYPE = "application/json"
GEOJSON_MEDIA_TYPE = "application/geo+json"


class ORJSONResponse(JSONResponse):
    """``application/json`` rendered with :func:`~geo_router.encoding.json.dumps`.

    A ``JSONResponse`` subclass so that FastAPI documents routes using it as JSON (with the
    model given in ``responses``) rather than as a plain string.
    """

    media_type = JSON_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        """Render through orjson; bytes pass through untouched."""
        return content if isinstance(content, bytes) else dumps(content)


class GeoJSONResponse(ORJSONResponse):
    """``application/geo+json`` rendered with :func:`~geo_router.encoding.json.dumps`."""

    media_type = GEOJSON_MEDIA_TYPE


def json_response(
    obj: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response: ``obj`` encoded with orjson, or bytes already encoded."""
    body = obj if isinstance(obj, bytes) else dumps(obj)
    return Response(body, status_code, headers, JSON_MEDIA_TYPE)


def geojson_response(obj: Any, headers: dict[str, str] | None = None) -> Response:
    """A GeoJSON response: ``obj`` encoded with orjson, or bytes already encoded."""
    body = obj if isinstance(obj, bytes) else dumps(obj)
    return Response(body, 200, headers, GEOJSON_MEDIA_TYPE)
