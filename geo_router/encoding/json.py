"""The routing answer as JSON: plain dicts in the answer's shape, and orjson bytes.

One builder per model type (:class:`~geo_router.city.models.ZoneMatch`,
:class:`~geo_router.city.models.Responder`, ...), in the field order of the model. The
single-point byte encoder (:mod:`geo_router.encoding.point`) builds its fragments with these
same builders, so a field added here reaches every answer; the OpenAPI schema is generated
from the models and a test holds this encoder to it.
"""

from __future__ import annotations

from typing import Any

import orjson

from geo_router.city.models import (
    AreaRouteResult,
    Candidate,
    CategoryRoute,
    Responder,
    RouteResult,
    ZoneMatch,
    ZoneShare,
)

__all__ = [
    "candidate_dict",
    "category_dict",
    "dumps",
    "responder_dict",
    "result_dict",
    "route_answer_dict",
    "route_result_dict",
    "zone_dict",
    "zone_share_dict",
]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    """Fallback for types orjson does not know (numpy bools inside lists, paths, sets)."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    return str(obj)


def dumps(obj: Any, *, indent: bool = False) -> bytes:
    """Serialize dataclasses, enums, numpy arrays and scalars to JSON bytes (NaN -> null).

    ``indent`` pretty-prints with two spaces (for people: the CLI).
    """
    option = _OPTIONS | orjson.OPT_INDENT_2 if indent else _OPTIONS
    return orjson.dumps(obj, option=option, default=_default)


# orjson serializes slotted dataclasses through per-field attribute lookups, ~5x slower than
# plain dicts (measured: 50-85 us vs 11-14 us for one RouteResult); building the dicts by
# hand costs less than the difference.


def candidate_dict(c: Candidate) -> dict[str, Any]:
    """A :class:`Candidate` as a dict."""
    return {"zone_id": c.zone_id, "name": c.name, "distance_m": c.distance_m}


def zone_dict(m: ZoneMatch) -> dict[str, Any]:
    """A :class:`ZoneMatch` (one layer's answer) as a dict."""
    return {
        "layer": m.layer,
        "version": m.version,
        "status": m.status.value,
        "zone_id": m.zone_id,
        "name": m.name,
        "candidates": [candidate_dict(c) for c in m.candidates],
    }


def responder_dict(r: Responder) -> dict[str, Any]:
    """A :class:`Responder` as a dict."""
    return {
        "facility_type": r.facility_type,
        "facility_id": r.facility_id,
        "name": r.name,
        "distance_m": r.distance_m,
        "bearing_deg": r.bearing_deg,
        "lon": r.lon,
        "lat": r.lat,
    }


def category_dict(cat: CategoryRoute | None) -> dict[str, Any] | None:
    """A :class:`CategoryRoute` as a dict (None stays None)."""
    if cat is None:
        return None
    return {
        "code": cat.code,
        "name": cat.name,
        "agency": cat.agency,
        "responders": list(cat.responders),
        "emergency": cat.emergency,
    }


def zone_share_dict(s: ZoneShare) -> dict[str, Any]:
    """A :class:`ZoneShare` (a zone an uncertain location overlaps) as a dict."""
    return {"zone_id": s.zone_id, "name": s.name, "share": s.share, "area_m2": s.area_m2}


def result_dict(
    lon: float,
    lat: float,
    zones: Any,
    responders: Any,
    category: Any,
    warnings: list[Any],
) -> dict[str, Any]:
    """The top level of a routing answer, in the field order of :class:`RouteResult`.

    The one place that lists it: the general encoder passes dicts, the single-point encoder
    pre-encoded parts (``orjson.Fragment``).
    """
    return {
        "lon": lon,
        "lat": lat,
        "zones": zones,
        "responders": responders,
        "category": category,
        "warnings": [str(w) for w in warnings],
    }


def route_result_dict(result: RouteResult) -> dict[str, Any]:
    """A :class:`RouteResult` as plain dicts, in the model's shape (the CLI prints this)."""
    return result_dict(
        result.lon,
        result.lat,
        {name: zone_dict(m) for name, m in result.zones.items()},
        {kind: [responder_dict(r) for r in rs] for kind, rs in result.responders.items()},
        category_dict(result.category),
        result.warnings,
    )


def route_answer_dict(
    result: RouteResult | AreaRouteResult, request_id: str | None = None
) -> dict[str, Any]:
    """The API's routing answer: the result, the request id, an area's ``overlaps``."""
    if isinstance(result, RouteResult):
        out = route_result_dict(result)
        out["request_id"] = request_id
        return out
    out = route_result_dict(result.route)
    out["request_id"] = request_id
    out["overlaps"] = {
        layer: [zone_share_dict(s) for s in shares] for layer, shares in result.overlaps.items()
    }
    return out
