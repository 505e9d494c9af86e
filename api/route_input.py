"""Every piece of request parsing of the API: points, JSON bodies, batches, bbox, k, category.

One set of rules for all endpoints. Coordinates go through the library's one range check
(:func:`geo_router.city.coords.require_lonlat` / ``check_lonlat``, which also hints at
swapped axes) named as the request names them (``lon``, ``lat``); a bbox through
:func:`geo_router.city.coords.parse_bbox`. In JSON, coordinates are numbers: ``true``,
``false`` and strings are refused everywhere alike (Python and numpy would take ``true`` for
1). Bodies are parsed with orjson on the raw bytes (not pydantic), so that malformed input
gets a message naming the field or the position; every refusal is a ``GeoRouterError``
that ``api.errors`` renders as problem+json.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any, TypeAlias, TypeVar
from urllib.parse import unquote_plus

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from api.errors import MalformedJSONError
from geo_router.city.coords import (
    JSON_NUMBER_TYPES,
    decimal_number,
    json_number,
    parse_bbox,
    require_lonlat,
    to_lonlat,
)
from geo_router.city.router import circle
from geo_router.errors import (
    BatchTooLargeError,
    InputError,
    InvalidCoordinatesError,
    InvalidGeometryError,
)

__all__ = [
    "MAX_K",
    "MAX_RADIUS_M",
    "BatchQuery",
    "Location",
    "PointQuery",
    "RouteQuery",
    "category_option",
    "json_number",
    "k_option",
    "load_json",
    "parse_batch_body",
    "parse_bbox",
    "parse_point_query",
    "parse_query",
    "parse_route_body",
]

MAX_K = 20
MAX_RADIUS_M = 50_000.0

#: How requests name the axes (messages and problem fields use these names).
AXES = ("lon", "lat")

_T = TypeVar("_T")


# --- values ---------------------------------------------------------------------------------


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


def k_option(value: Any, default: int) -> int:
    """The ``k`` option: an integer 1..20 (``default`` when absent)."""
    if value is None:
        return default
    if type(value) is not int or not 1 <= value <= MAX_K:
        raise InputError(
            f"k must be an integer from 1 to {MAX_K}, got {value!r}",
            detail={"field": "k", "reason": f"not an integer in 1..{MAX_K}"},
        )
    return value


def category_option(value: Any) -> str | None:
    """The ``category`` option: a string code or absent."""
    if value is None or isinstance(value, str):
        return value
    raise InputError(
        "category must be a string", detail={"field": "category", "reason": "not a string"}
    )


# --- GET /v1/route ------------------------------------------------------------------------


def parse_query(raw: bytes) -> dict[str, str]:
    """A query string as {name: value}, the last value winning, blank values kept.

    The same answer as starlette's ``request.query_params`` at a fraction of the cost: only
    names and values holding ``%`` or ``+`` go through ``unquote_plus``.
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


def _query_float(params: dict[str, str], name: str) -> float:
    """A required float query parameter; 422 naming it when missing or not a number."""
    text = params.get(name)
    value = None if text is None else decimal_number(text)
    if value is None:
        missing = text is None
        raise InputError(
            f"query parameter {name} is required"
            if missing
            else f"query parameter {name} must be a number, got {text!r}",
            detail={"field": name, "reason": "missing" if missing else "not a number"},
        )
    return value


def _query_k(params: dict[str, str], default: int) -> int:
    """The optional ``k`` query parameter, 1..20."""
    text = params.get("k")
    if not text:
        return default
    value = int(text) if text.isascii() and text.isdigit() else None  # not "1_0" nor "٣"
    if value is None:
        raise InputError(
            f"k must be an integer from 1 to {MAX_K}, got {text!r}",
            detail={"field": "k", "reason": f"not an integer in 1..{MAX_K}"},
        )
    return k_option(value, default)


@dataclass(frozen=True, slots=True)
class PointQuery:
    """What a ``GET /v1/route`` query asks: a point (EPSG:4326), responders, a category."""

    lon: float
    lat: float
    k: int
    category: str | None


def parse_point_query(raw_query: bytes, default_k: int) -> PointQuery:
    """``lon``, ``lat``, ``k`` and ``category`` of a ``GET /v1/route`` query string.

    Raises ``InputError`` / ``InvalidCoordinatesError`` naming the parameter.
    """
    params = parse_query(raw_query)
    lon, lat = _query_point(params)
    return PointQuery(lon, lat, _query_k(params, default_k), params.get("category") or None)


def _query_point(params: dict[str, str]) -> tuple[float, float]:
    """``lon`` and ``lat`` of a query, range-checked; a problem lists every bad axis."""
    errors: list[dict[str, str]] = []
    values: list[float | None] = []
    for name in AXES:
        try:
            values.append(_query_float(params, name))
        except InputError as exc:
            errors.append({"field": name, "message": exc.message})
            values.append(None)
    lon, lat = values
    if lon is not None and lat is not None:
        return require_lonlat(lon, lat, names=AXES)
    for value, pair in ((lon, (lon, 0.0)), (lat, (0.0, lat))):
        if value is not None:  # the axis that is a number may be out of range too
            try:
                require_lonlat(*pair, names=AXES)
            except InvalidCoordinatesError as exc:
                errors.extend(exc.detail["errors"])
    raise InputError(
        "; ".join(e["message"] for e in errors),
        detail={"field": errors[0]["field"], "reason": "not a number", "errors": errors},
    )


# --- POST /v1/route -----------------------------------------------------------------------


#: A point (lon, lat), or an uncertain location: a shapely (Multi)Polygon in EPSG:4326
#: (checked by ``Router.route_area``).
Location: TypeAlias = tuple[float, float] | BaseGeometry


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """What a ``POST /v1/route`` body asks: a point or an area, a category, responders."""

    location: Location
    category: str | None
    k: int
    field: str = "body"  #: the request field holding the location (problems name it)


def _position(coords: Any, field: str) -> tuple[float, float]:
    """``[lon, lat]`` (or with an elevation) from a GeoJSON Point, range-checked."""
    if not isinstance(coords, list) or len(coords) not in (2, 3):
        raise InvalidGeometryError(
            f"{field} must be [lon, lat] (GeoJSON order)",
            detail={"field": field, "reason": "not a position"},
        )
    lon, lat = json_number(coords[0], f"{field}[0]"), json_number(coords[1], f"{field}[1]")
    return require_lonlat(lon, lat, names=AXES)


#: ``crs`` members (GeoJSON 2008) that name what RFC 7946 coordinates are anyway: lon/lat WGS84.
_LONLAT_CRS_NAMES = frozenset(
    {"urn:ogc:def:crs:OGC:1.3:CRS84", "OGC:CRS84", "EPSG:4326", "urn:ogc:def:crs:EPSG::4326"}
)


def _check_crs(geometry: dict[str, Any], field: str) -> None:
    """Refuse a ``crs`` member naming another CRS: its coordinates would be read as lon/lat."""
    crs = geometry.get("crs")
    if crs is None:
        return
    props = crs.get("properties") if isinstance(crs, dict) else None
    name = props.get("name") if isinstance(props, dict) else None
    if name not in _LONLAT_CRS_NAMES:
        raise InvalidGeometryError(
            f"{field}.crs {name or crs!r} is not supported: GeoJSON coordinates are WGS84 lon/lat "
            '(RFC 7946); send other systems as {"x", "y", "crs"}',
            detail={"field": f"{field}.crs", "reason": "unsupported crs member"},
        )


def _check_rings(rings: Any, field: str) -> None:
    """A polygon's rings as RFC 7946 has them: lists of at least 4 positions of 2 or 3 JSON
    numbers, the last equal to the first (shapely would close, pad or convert silently)."""
    if not isinstance(rings, list) or not rings:
        raise InvalidGeometryError(
            f"{field} must be a non-empty list of linear rings",
            detail={"field": field, "reason": "no rings"},
        )
    for i, ring in enumerate(rings):
        where = f"{field}[{i}]"
        if not isinstance(ring, list) or len(ring) < 4:
            raise InvalidGeometryError(
                f"{where}: a Polygon ring needs at least 4 positions, the last equal to the first",
                detail={"field": where, "reason": "too few positions"},
            )
        try:  # C-speed passes over the positions (a ring may hold a million)
            lengths = set(map(len, ring))
        except TypeError:
            lengths = set()
        if (
            not lengths
            or not lengths <= {2, 3}
            or len(lengths) > 1
            or not (set(map(type, chain.from_iterable(ring))) <= JSON_NUMBER_TYPES)
        ):
            raise InvalidGeometryError(
                f"{where} must hold positions [lon, lat] (or [lon, lat, z]) of numbers, "
                "all of one dimension",
                detail={"field": where, "reason": "not positions"},
            )
        if ring[0] != ring[-1]:
            raise InvalidGeometryError(
                f"{where} is not closed: its last position must equal its first",
                detail={"field": where, "reason": "ring not closed"},
            )
        lons = np.fromiter((position[0] for position in ring), np.float64, len(ring))
        with np.errstate(invalid="ignore"):
            if np.any(np.abs(np.diff(lons)) > 180.0):
                raise InvalidGeometryError(
                    f"{where} crosses the antimeridian (an edge spans more than 180 degrees of "
                    "longitude): cut it in two at 180 degrees (RFC 7946, section 3.1.9)",
                    detail={"field": where, "reason": "crosses the antimeridian"},
                )


def _geometry(geometry: Any, field: str) -> Location:
    """The location of a GeoJSON Point, Polygon or MultiPolygon."""
    if not isinstance(geometry, dict):
        raise InvalidGeometryError(
            f"{field} must be a GeoJSON geometry object",
            detail={"field": field, "reason": "not an object"},
        )
    gtype = geometry.get("type")
    if gtype == "Point":
        _check_crs(geometry, field)
        return _position(geometry.get("coordinates"), f"{field}.coordinates")
    if gtype in ("Polygon", "MultiPolygon"):
        _check_crs(geometry, field)
        coordinates = geometry.get("coordinates")
        polygons = [coordinates] if gtype == "Polygon" else coordinates
        if not isinstance(polygons, list):
            raise InvalidGeometryError(
                f"{field}.coordinates must be a list of polygons",
                detail={"field": f"{field}.coordinates", "reason": "not a list"},
            )
        for i, polygon in enumerate(polygons):
            where = f"{field}.coordinates" + ("" if gtype == "Polygon" else f"[{i}]")
            _check_rings(polygon, where)
        try:
            return shapely.geometry.shape(geometry)
        except Exception as exc:  # shapely raises many types for malformed rings
            raise InvalidGeometryError(
                f"{field} is not a valid GeoJSON {gtype}: {exc}",
                detail={"field": field, "reason": "malformed coordinates"},
            ) from exc
    raise InvalidGeometryError(
        f"{field}.type must be Point, Polygon or MultiPolygon, got {gtype!r}",
        detail={"field": f"{field}.type", "reason": "unsupported geometry type"},
    )


def _lonlat(data: dict[str, Any]) -> Location:
    """``{"lon", "lat"}``: the point, or the circle of ``radius_m`` metres around it."""
    lon, lat = json_number(data.get("lon"), "lon"), json_number(data.get("lat"), "lat")
    point = require_lonlat(lon, lat, names=AXES)
    if data.get("radius_m") is None:
        return point
    radius = json_number(data["radius_m"], "radius_m")
    if not 0 < radius <= MAX_RADIUS_M:
        raise InputError(
            f"radius_m must be in (0, {MAX_RADIUS_M:g}] metres, got {radius:g}",
            detail={"field": "radius_m", "reason": "out of range"},
        )
    return circle(*point, radius)


def _xy(data: dict[str, Any]) -> tuple[float, float]:
    """(lon, lat) from ``{"x", "y", "crs"}`` through pyproj, range-checked."""
    x, y = json_number(data.get("x"), "x"), json_number(data.get("y"), "y")
    crs = data.get("crs")
    if not isinstance(crs, str) or not crs.strip():
        raise InputError(
            'x/y input needs "crs", e.g. "EPSG:32748"',
            detail={"field": "crs", "reason": "missing"},
        )
    lon, lat = to_lonlat(x, y, crs)
    return require_lonlat(lon.item(0), lat.item(0), names=AXES, context=f"x/y in {crs} gives ")


def parse_route_body(data: Any, default_k: int) -> RouteQuery:
    """Interpret a ``POST /v1/route`` body.

    Accepted: ``{"lon", "lat"[, "radius_m"]}``, ``{"x", "y", "crs"}``, a GeoJSON Point or
    Polygon, or a Feature holding one; each with optional ``category`` and ``k`` (also read
    from a Feature's properties).
    """
    if not isinstance(data, dict):
        raise InputError("body must be a JSON object", detail={"field": "body", "reason": "type"})
    kind = data.get("type")
    props = data.get("properties") if kind == "Feature" else None
    props = props if isinstance(props, dict) else {}
    category = category_option(data.get("category", props.get("category")))
    k = k_option(data.get("k", props.get("k")), default_k)
    location: Location
    if kind == "Feature":
        location, field = _geometry(data.get("geometry"), "geometry"), "geometry"
    elif kind is not None:
        location, field = _geometry(data, "body"), "body"
    elif "lon" in data or "lat" in data:
        location, field = _lonlat(data), "lon"
    elif "x" in data or "y" in data:
        location, field = _xy(data), "x"
    else:
        raise InputError(
            'body needs {"lon", "lat"}, {"x", "y", "crs"}, a GeoJSON Point/Polygon or a Feature',
            detail={"field": "body", "reason": "no location"},
        )
    return RouteQuery(location, category, k, field)


# --- POST /v1/route/batch -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchQuery:
    """What a batch body asks: points (NaN where a row is not a pair), and per-row errors."""

    lon: np.ndarray
    lat: np.ndarray
    row_errors: list[str | None]
    category: str | None
    k: int


def parse_batch_body(data: Any, limit: int) -> BatchQuery:
    """The points of a batch body, ``{"points": [[lon, lat], ...]}`` or a FeatureCollection.

    Rows that are not ``[lon, lat]`` pairs of numbers come back as NaN with a reason; the
    router marks them invalid and the answer carries the reason in their place. Coordinates
    are range-checked by the router, row by row. ``k`` defaults to 1.
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
    category, k = category_option(data.get("category")), k_option(data.get("k"), 1)
    return BatchQuery(*_rows_to_arrays(rows, field), category, k)


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
            try:
                _check_crs(geom, "geometry")
            except InvalidGeometryError:
                return None  # coordinates in another system are not a [lon, lat] pair
            return geom.get("coordinates")
    return None


def _is_position(row: Any) -> bool:
    """``[lon, lat]`` or ``[lon, lat, altitude]`` whose first two are JSON numbers."""
    return (
        isinstance(row, list)
        and len(row) in (2, 3)
        and type(row[0]) in JSON_NUMBER_TYPES
        and type(row[1]) in JSON_NUMBER_TYPES
    )


def _rows_to_arrays(rows: list[Any], field: str) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Rows to float arrays in a few C-speed passes; only a malformed batch takes the slow path.

    A row is ``[lon, lat]`` or ``[lon, lat, altitude]`` of JSON numbers (an altitude is not
    checked, as GeoJSON allows any).
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
        and set(map(type, chain.from_iterable(rows))) <= JSON_NUMBER_TYPES
    )
    if numbers and lengths == {2}:
        xy = np.fromiter(chain.from_iterable(rows), np.float64, 2 * n)
        return xy[0::2].copy(), xy[1::2].copy(), [None] * n
    if numbers:  # some rows carry an altitude
        pairs = np.array([row[:2] for row in rows], dtype=np.float64)
        return pairs[:, 0].copy(), pairs[:, 1].copy(), [None] * n
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    errors: list[str | None] = [None] * n
    for i, row in enumerate(rows):  # error path only: each row needs its own message
        if _is_position(row):
            lon[i], lat[i] = row[0], row[1]
        else:
            errors[i] = f"{field}[{i}] is not a [lon, lat] pair of numbers"
    return lon, lat, errors
