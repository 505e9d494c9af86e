"""Routing endpoints: one point (GET / POST, also uncertain locations) and batches.

The GET handler is the hot path: the query string split by hand, a scalar range check, one
``router.route`` call, plain dicts, orjson, ``Response``. Bodies are parsed with orjson on the
raw bytes (not pydantic) so that malformed input gets a message naming the field or the
position. A batch is parsed, routed (against one snapshot) and encoded column-wise in one
worker thread.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any
from urllib.parse import unquote_plus

import numpy as np
import orjson
import shapely
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.deps import require_roles, router_or_503
from api.errors import MalformedJSONError
from api.point_json import encode_point_hits
from api.schemas import BatchResponse, RouteResponse, body_schema_ref
from api.serialize import (
    ORJSONResponse,
    dumps,
    encode_batch_rows,
    encode_zones_column,
    route_result_dict,
)
from geo_router.errors import (
    BatchTooLargeError,
    InputError,
    InvalidCoordinatesError,
    InvalidGeometryError,
)

router = APIRouter(tags=["routing"])

#: What a JSON number parses to (bool, a subclass of int, deliberately not).
_NUMBER_TYPES = {float, int}

#: Who may route (admin always may), single points and batches (intake gateways batch too);
#: checked by the handlers and by the GET fast path (api/fastpath.py).
ROUTE_ROLE_NAMES: tuple[str, ...] = ("intake", "planner", "analyst")
ROUTE_ROLES = require_roles(*ROUTE_ROLE_NAMES)
BATCH_ROLES = require_roles(*ROUTE_ROLE_NAMES)

MAX_K = 20
MAX_RADIUS_M = 50_000.0


# --- parsing --------------------------------------------------------------------------------


def load_json(body: bytes) -> Any:
    """Parse a request body with orjson; ``MalformedJSONError`` (400) names the position."""
    if not body:
        raise MalformedJSONError("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSONError(
            f"body is not valid JSON: {exc.msg} at position {exc.pos} "
            f"(line {exc.lineno}, column {exc.colno})",
            detail={"position": exc.pos},
        ) from exc


def _number(value: Any, field: str) -> float:
    """A JSON number as float; strings, booleans and null are refused naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(
            f"{field} must be a number, got {type(value).__name__}",
            detail={"field": field, "reason": "not a number"},
        )
    return float(value)


def check_lonlat(lon: float, lat: float, where: str = "") -> None:
    """Refuse non-finite or out-of-range coordinates (scalar fast path, clear message)."""
    if math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90:
        return
    problems = []
    for name, value, limit in (("lon", lon, 180), ("lat", lat, 90)):
        if math.isnan(value):
            problems.append((name, f"{name} is NaN"))
        elif math.isinf(value):
            problems.append((name, f"{name} is infinite"))
        elif abs(value) > limit:
            hint = ""
            if name == "lat" and abs(lon) <= 90 < abs(value) <= 180:
                hint = " (lat, lon swapped? GeoJSON order is lon, lat)"
            problems.append((name, f"{name} {value:g} is out of range [-{limit}, {limit}]{hint}"))
    message = "; ".join(m for _, m in problems)
    raise InvalidCoordinatesError(
        f"{where}{message}",
        detail={"errors": [{"field": f, "message": m} for f, m in problems]},
    )


def _k(value: Any, default: int) -> int:
    """The ``k`` option: an integer 1..20."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
        raise InputError(
            f"k must be an integer from 1 to {MAX_K}, got {value!r}",
            detail={"field": "k", "reason": f"not an integer in 1..{MAX_K}"},
        )
    return value


def _category(value: Any) -> str | None:
    """The ``category`` option: a string code or absent."""
    if value is None or isinstance(value, str):
        return value
    raise InputError(
        "category must be a string", detail={"field": "category", "reason": "not a string"}
    )


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """What a POST /v1/route body asks: a point, or an area (circle / polygon)."""

    lon: float
    lat: float
    area: Any  # shapely Polygon in EPSG:4326, or None for a point
    category: str | None
    k: int


def _point_coords(coords: Any, field: str) -> tuple[float, float]:
    """``[lon, lat]`` (or with an elevation) from a GeoJSON Point."""
    if not isinstance(coords, list) or len(coords) not in (2, 3):
        raise InvalidGeometryError(
            f"{field} must be [lon, lat] (GeoJSON order)",
            detail={"field": field, "reason": "not a position"},
        )
    lon, lat = _number(coords[0], f"{field}[0]"), _number(coords[1], f"{field}[1]")
    check_lonlat(lon, lat)
    return lon, lat


def _polygon(geometry: dict[str, Any], field: str) -> Any:
    """A valid shapely polygon, in range, from a GeoJSON Polygon / MultiPolygon."""
    try:
        geom = shapely.geometry.shape(geometry)
    except Exception as exc:  # shapely raises many types for malformed rings
        raise InvalidGeometryError(
            f"{field} is not a valid GeoJSON {geometry.get('type')}: {exc}",
            detail={"field": field, "reason": "malformed coordinates"},
        ) from exc
    if geom.is_empty:
        raise InvalidGeometryError(f"{field} is empty", detail={"field": field, "reason": "empty"})
    xy = shapely.get_coordinates(geom)
    if not np.isfinite(xy).all():
        raise InvalidGeometryError(
            f"{field} has non-finite coordinates", detail={"field": field, "reason": "NaN"}
        )
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InvalidCoordinatesError(
            f"{field} has coordinates outside lon [-180, 180] / lat [-90, 90]",
            detail={"field": field, "reason": "out of range"},
        )
    if not geom.is_valid:
        raise InvalidGeometryError(
            f"{field} is not a valid polygon: {shapely.is_valid_reason(geom)}",
            detail={"field": field, "reason": "invalid geometry"},
        )
    return geom


def _geometry(geometry: Any, field: str) -> tuple[float, float, Any]:
    """(lon, lat, area or None) from a GeoJSON geometry."""
    if not isinstance(geometry, dict):
        raise InvalidGeometryError(
            f"{field} must be a GeoJSON geometry object",
            detail={"field": field, "reason": "not an object"},
        )
    gtype = geometry.get("type")
    if gtype == "Point":
        lon, lat = _point_coords(geometry.get("coordinates"), f"{field}.coordinates")
        return lon, lat, None
    if gtype in ("Polygon", "MultiPolygon"):
        area = _polygon(geometry, field)
        point = area.representative_point()
        return point.x, point.y, area
    raise InvalidGeometryError(
        f"{field}.type must be Point, Polygon or MultiPolygon, got {gtype!r}",
        detail={"field": f"{field}.type", "reason": "unsupported geometry type"},
    )


def _xy(data: dict[str, Any]) -> tuple[float, float]:
    """(lon, lat) from ``{"x", "y", "crs"}`` through pyproj."""
    from geo_router.city.coords import to_lonlat

    x, y = _number(data.get("x"), "x"), _number(data.get("y"), "y")
    crs = data.get("crs")
    if not isinstance(crs, str) or not crs.strip():
        raise InputError(
            'x/y input needs "crs", e.g. "EPSG:32748"',
            detail={"field": "crs", "reason": "missing"},
        )
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InvalidCoordinatesError("x and y must be finite numbers")
    lon, lat = to_lonlat(x, y, crs)
    lon, lat = float(np.asarray(lon).ravel()[0]), float(np.asarray(lat).ravel()[0])
    check_lonlat(lon, lat, where=f"x/y in {crs} gives ")
    return lon, lat


def parse_route_body(data: Any, default_k: int) -> RouteQuery:
    """Interpret a POST /v1/route body.

    Accepted: ``{"lon", "lat"[, "radius_m"]}``, ``{"x", "y", "crs"}``, a GeoJSON Point or
    Polygon, or a Feature holding one; each with optional ``category`` and ``k`` (also read
    from a Feature's properties).
    """
    if not isinstance(data, dict):
        raise InputError("body must be a JSON object", detail={"field": "body", "reason": "type"})
    props = data.get("properties") if data.get("type") == "Feature" else None
    props = props if isinstance(props, dict) else {}
    category = _category(data.get("category", props.get("category")))
    k = _k(data.get("k", props.get("k")), default_k)
    kind = data.get("type")
    area = None
    if kind == "Feature":
        lon, lat, area = _geometry(data.get("geometry"), "geometry")
    elif kind is not None:
        lon, lat, area = _geometry(data, "body")
    elif "lon" in data or "lat" in data:
        lon, lat = _number(data.get("lon"), "lon"), _number(data.get("lat"), "lat")
        check_lonlat(lon, lat)
        radius = data.get("radius_m")
        if radius is not None:
            radius = _number(radius, "radius_m")
            if not 0 < radius <= MAX_RADIUS_M:
                raise InputError(
                    f"radius_m must be in (0, {MAX_RADIUS_M:g}] metres, got {radius:g}",
                    detail={"field": "radius_m", "reason": "out of range"},
                )
            from geo_router.city.router import circle

            area = circle(lon, lat, radius)
    elif "x" in data or "y" in data:
        lon, lat = _xy(data)
    else:
        raise InputError(
            'body needs {"lon", "lat"}, {"x", "y", "crs"}, a GeoJSON Point/Polygon or a Feature',
            detail={"field": "body", "reason": "no location"},
        )
    return RouteQuery(lon, lat, area, category, k)


def parse_batch_body(
    data: Any, limit: int
) -> tuple[np.ndarray, np.ndarray, list[str | None], Any, Any]:
    """Points of a batch body as (lon, lat, per-row structural errors, category, k).

    Rows that are not ``[lon, lat]`` pairs of numbers come back as NaN with a reason; the
    router marks them invalid and the answer carries the reason in their place.
    """
    if not isinstance(data, dict):
        raise InputError("body must be a JSON object", detail={"field": "body", "reason": "type"})
    if "points" in data:
        rows = data["points"]
        field = "points"
        if not isinstance(rows, list):
            raise InputError("points must be a list of [lon, lat]", detail={"field": "points"})
    elif data.get("type") == "FeatureCollection":
        feats = data.get("features")
        field = "features"
        if not isinstance(feats, list):
            raise InvalidGeometryError("features must be a list", detail={"field": "features"})
        _check_limit(len(feats), limit)
        rows = [_feature_position(f) for f in feats]
    else:
        raise InputError(
            'batch body needs "points": [[lon, lat], ...] or a GeoJSON FeatureCollection',
            detail={"field": "body", "reason": "no points"},
        )
    _check_limit(len(rows), limit)
    lon, lat, errors = _rows_to_arrays(rows, field)
    return lon, lat, errors, _category(data.get("category")), data.get("k")


def _check_limit(n: int, limit: int) -> None:
    if n > limit:
        raise BatchTooLargeError(
            f"batch of {n} points exceeds the limit of {limit} points per request",
            detail={"limit": limit, "count": n},
        )


def _feature_position(feature: Any) -> Any:
    """The coordinates of a Point feature, or None for anything else."""
    if isinstance(feature, dict):
        geom = feature.get("geometry")
        if isinstance(geom, dict) and geom.get("type") == "Point":
            return geom.get("coordinates")
    return None


def _rows_to_arrays(rows: list[Any], field: str) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Rows to float arrays in a few C-speed passes; only a malformed batch takes the slow path.

    A row is ``[lon, lat]`` or ``[lon, lat, altitude]`` of JSON numbers. Booleans are not
    numbers here, although Python and numpy would take ``true`` for 1.
    """
    n = len(rows)
    if n == 0:
        return np.empty(0), np.empty(0), []
    try:  # len() of a number or None raises; a string's characters fail the type test
        lengths = set(map(len, rows))
    except TypeError:
        lengths = set()
    numbers = (
        bool(lengths)
        and lengths <= {2, 3}
        and set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES
    )
    if numbers and lengths == {2}:
        xy = np.fromiter(chain.from_iterable(rows), np.float64, 2 * n)
        return xy[0::2].copy(), xy[1::2].copy(), [None] * n
    if numbers:
        pairs = np.array([row[:2] for row in rows], dtype=np.float64)
        return pairs[:, 0].copy(), pairs[:, 1].copy(), [None] * n
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    errors: list[str | None] = [None] * n
    for i, row in enumerate(rows):  # error path only: each row needs its own message
        ok = (
            isinstance(row, list)
            and len(row) in (2, 3)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in row[:2])
        )
        if ok:
            lon[i], lat[i] = row[0], row[1]
        else:
            errors[i] = f"{field}[{i}] is not a [lon, lat] pair of numbers"
    return lon, lat, errors


# --- handlers ---------------------------------------------------------------------------


def _route_body(result: Any, request_id: str | None, overlaps: Any = None) -> bytes:
    """The single-point answer: the RouteResult's fields plus the request id."""
    out = route_result_dict(result, request_id)
    if overlaps is not None:
        out["overlaps"] = overlaps
    return dumps(out)


def parse_query(raw: bytes) -> dict[str, str]:
    """A query string as {name: value}, the last value winning, blank values kept.

    The same answer as starlette's ``request.query_params`` for the GET hot path, at a
    fraction of the cost: only values holding ``%`` or ``+`` go through ``unquote_plus``.
    """
    out: dict[str, str] = {}
    if not raw:
        return out
    for part in raw.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        out[name] = value
    return out


def _query_float(params: Any, name: str) -> float:
    """A required float query parameter; 422 naming it when missing or not a number."""
    text = params.get(name)
    if text is None:
        raise InputError(
            f"query parameter {name} is required", detail={"field": name, "reason": "missing"}
        )
    try:
        return float(text)
    except ValueError:
        raise InputError(
            f"query parameter {name} must be a number, got {text!r}",
            detail={"field": name, "reason": "not a number"},
        ) from None


def _query_k(params: Any, default: int) -> int:
    """The optional ``k`` query parameter, 1..20."""
    text = params.get("k")
    if text is None or text == "":
        return default
    try:
        return _k(int(text), default)
    except ValueError:
        raise InputError(
            f"k must be an integer from 1 to {MAX_K}, got {text!r}",
            detail={"field": "k", "reason": f"not an integer in 1..{MAX_K}"},
        ) from None


def parse_point_query(raw_query: bytes, default_k: int) -> tuple[float, float, int, str | None]:
    """``lon``, ``lat``, ``k`` and ``category`` of a GET /v1/route query string.

    Raises ``InputError`` / ``InvalidCoordinatesError`` naming the parameter.
    """
    params = parse_query(raw_query)
    lon, lat = _query_float(params, "lon"), _query_float(params, "lat")
    check_lonlat(lon, lat)
    return lon, lat, _query_k(params, default_k), params.get("category") or None


def route_point_body(router: Any, raw_query: bytes, default_k: int, rid: str | None) -> bytes:
    """Parse a GET /v1/route query, route the point, and encode the answer."""
    lon, lat, k, category = parse_point_query(raw_query, default_k)
    return encode_point_hits(router.route_hits(lon, lat, category=category, k=k), rid)


#: The GET parameters, documented here because the handler parses them itself: FastAPI's
#: per-request parameter machinery costs more than routing the point.
_ROUTE_QUERY_DOC = {
    "parameters": [
        {
            "name": "lon",
            "in": "query",
            "required": True,
            "description": "Longitude, EPSG:4326 (GeoJSON order: lon first).",
            "schema": {"type": "number", "minimum": -180, "maximum": 180},
            "example": 106.8272,
        },
        {
            "name": "lat",
            "in": "query",
            "required": True,
            "description": "Latitude, EPSG:4326.",
            "schema": {"type": "number", "minimum": -90, "maximum": 90},
            "example": -6.1754,
        },
        {
            "name": "category",
            "in": "query",
            "required": False,
            "description": "Report category code: ranks its responder types, adds its agency.",
            "schema": {"type": "string"},
        },
        {
            "name": "k",
            "in": "query",
            "required": False,
            "description": f"Responders per facility type, 1..{MAX_K} (default 3).",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K},
        },
    ]
}


@router.get(
    "/v1/route",
    operation_id="route_point",
    summary="Route one location (lon, lat in EPSG:4326)",
    response_class=ORJSONResponse,
    responses={200: {"model": RouteResponse}},
    openapi_extra=_ROUTE_QUERY_DOC,
)
async def route_point(request: Request) -> Response:
    """Zones holding the point in every layer, the k nearest responders, the category.

    The hot path: parameters are read by hand (FastAPI's per-parameter validation costs more
    than routing the point), the role is checked inline, the router called once and its
    dataclasses serialized by orjson.
    """
    await ROUTE_ROLES(request)
    body = route_point_body(
        router_or_503(request),
        request.scope["query_string"],
        request.app.state.settings.default_k,
        request.scope["state"].get("request_id"),
    )
    return Response(body, media_type="application/json")


@router.post(
    "/v1/route",
    operation_id="route_location",
    summary="Route a point, a GeoJSON geometry/Feature, x/y in a CRS, or an uncertain area",
    response_class=ORJSONResponse,
    responses={200: {"model": RouteResponse}},
    openapi_extra=body_schema_ref(
        "LonLatBody", "XYBody", "PointGeometry", "PolygonGeometry", "RouteFeature"
    ),
)
async def route_location(request: Request, _principal: Any = Depends(ROUTE_ROLES)) -> Response:
    """Route one location given as a JSON body; circles and polygons list zone shares."""
    query = parse_route_body(load_json(await request.body()), request.app.state.settings.default_k)
    city = router_or_503(request)
    rid = request.scope["state"].get("request_id")
    if query.area is None:
        result = city.route(query.lon, query.lat, category=query.category, k=query.k)
        return Response(_route_body(result, rid), media_type="application/json")
    area = await run_in_threadpool(city.route_area, query.area, category=query.category, k=query.k)
    return Response(_route_body(area.route, rid, area.overlaps), media_type="application/json")


def _batch_answer(
    city: Any,
    lon: np.ndarray,
    lat: np.ndarray,
    errors: list[str | None],
    category: str | None,
    k: int,
    rid: str | None,
) -> bytes:
    """Route the batch and encode the compact answer (runs in a worker thread).

    One snapshot answers the whole request: routing, category and the names in the answer.
    """
    snap = city.snapshot
    cat = city.category(category, snapshot=snap) if category is not None else None
    facilities = dict(snap.facilities)
    if cat is not None:  # a category ranks only its responder types, as Router.route does
        facilities = {t: facilities[t] for t in cat.responders if t in facilities}
    layers = dict(snap.layers)
    zones: list[np.ndarray] = []

    def encode_zones(lookups: dict[str, Any], valid: np.ndarray) -> None:
        # on this thread while the router's helper thread still ranks facilities
        zones.append(encode_zones_column(lookups, valid, layers))

    bulk = city.route_many(
        lon, lat, k=k, responder_types=list(facilities), snapshot=snap, on_zones=encode_zones
    )
    reasons = None
    if errors.count(None) != len(errors):
        reasons = [e or r for e, r in zip(errors, bulk.reasons, strict=True)]
    head = b'{"count":%d,"category":%s,"request_id":%s,"results":[' % (
        bulk.n,
        dumps(cat),
        dumps(rid),
    )
    zones_column = zones[0] if zones else None
    return encode_batch_rows(bulk, layers, facilities, reasons, zones_column, head=head, tail=b"]}")


@router.post(
    "/v1/route/batch",
    operation_id="route_batch",
    summary="Route up to batch_limit points in one request (compact answers, input order)",
    response_class=ORJSONResponse,
    responses={200: {"model": BatchResponse}},
    openapi_extra=body_schema_ref("BatchPoints", "BatchFeatureCollection"),
)
async def route_batch(request: Request, _principal: Any = Depends(BATCH_ROLES)) -> Response:
    """Route many points; a row with unusable coordinates answers ``{"error": ...}`` in place."""
    body = await request.body()
    answer = await run_in_threadpool(
        _batch_from_body,
        request,
        body,
        request.app.state.settings.batch_limit,
        request.scope["state"].get("request_id"),
    )
    return Response(answer, media_type="application/json")


def _batch_from_body(request: Request, body: bytes, limit: int, rid: str | None) -> bytes:
    """Parse, route and encode one batch (in a worker thread: the event loop stays free)."""
    with _gc_paused():  # the body's 10,000 small lists die right after parsing
        lon, lat, errors, category, k = parse_batch_body(load_json(body), limit)
    k = _k(k, 1)
    return _batch_answer(router_or_503(request), lon, lat, errors, category, k, rid)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a body becomes arrays.

    A 10,000-point body is 10,000 lists: parsed with the collector on, they trigger
    collections that find nothing and promote them, and the full collections that follow
    cost ~100 ms in a loaded app. Paused, they are freed by refcount before any collection.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
