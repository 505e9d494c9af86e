"""Pydantic schemas of the core API, for the OpenAPI document only.

Answers are encoded by the library (:mod:`geo_router.encoding`) and request bodies parsed
by :mod:`api.route_input`; these models describe those shapes (``responses={200: {"model":
...}}``, ``openapi_extra``) without validating every response. The routing answer's schema
is generated from the result dataclasses of :mod:`geo_router.city.models`; the compact
batch rows are described by hand. A test holds both to their encoders.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from geo_router.city.models import CategoryRoute, RouteResult, Warning, ZoneShare, ZoneStatus

__all__ = [
    "PROBLEM_RESPONSES",
    "BatchResponse",
    "CategoryOut",
    "RouteResponse",
    "body_schema_ref",
    "extra_component_schemas",
]


class FieldError(BaseModel):
    """One offending field."""

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str = Field(examples=["https://geo-router.dev/problems/invalid-coordinates"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {
        "description": "A problem (RFC 9457): 4xx for the caller's mistakes, 5xx otherwise.",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
}


# --- routing answers: generated from the library's result dataclasses ---------------------


def _answer_model(
    name: str, result: type[Any], doc: str, example: dict[str, Any], **extra: Any
) -> type[BaseModel]:
    """A documentation model with the fields of a result dataclass (plus ``extra``).

    The nested dataclasses (``ZoneMatch``, ``Responder``, ...) become components of their
    own, so a field added to a model is documented without an edit here; a test holds the
    encoder (:mod:`geo_router.encoding.json`) to this schema.
    """
    hints = get_type_hints(result)
    fields: dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(result)}
    config = ConfigDict(json_schema_extra={"examples": [example]})
    return create_model(name, __doc__=doc, __config__=config, **fields, **extra)


#: A category as answers and the service information show it.
CategoryOut = CategoryRoute

_ROUTE_EXAMPLE: dict[str, Any] = {
    "lon": 106.8272,
    "lat": -6.1754,
    "zones": {
        "kelurahan": {
            "layer": "kelurahan",
            "version": "3f2a9c1b7d20",
            "status": "inside",
            "zone_id": "KEL-001",
            "name": "Gambir",
            "candidates": [{"zone_id": "KEL-001", "name": "Gambir", "distance_m": 0.0}],
        }
    },
    "responders": {
        "fire_station": [
            {
                "facility_type": "fire_station",
                "facility_id": "FS-01",
                "name": "Pos Damkar Gambir",
                "distance_m": 812.4,
                "bearing_deg": 141.2,
                "lon": 106.832,
                "lat": -6.181,
            }
        ]
    },
    "category": None,
    "warnings": [],
    "request_id": "5b0e7c0f2d6b4a0c9d0f1e2a3b4c5d6e",
}

RouteResponse = _answer_model(
    "RouteResponse",
    RouteResult,
    "The routing answer for one location (``overlaps`` only for circles and polygons).",
    _ROUTE_EXAMPLE,
    request_id=(str | None, ...),
    overlaps=(dict[str, list[ZoneShare]] | None, None),
)


class CompactCandidate(BaseModel):
    """A candidate zone in a batch answer."""

    id: str
    distance_m: float | None


class CompactZone(BaseModel):
    """One layer's answer in a batch row."""

    id: str | None
    status: ZoneStatus
    candidates: list[CompactCandidate]


class CompactResponder(BaseModel):
    """A responder in a batch row."""

    id: str
    distance_m: float | None
    bearing_deg: float | None


class BatchRow(BaseModel):
    """One routed point of a batch."""

    zones: dict[str, CompactZone]
    responders: dict[str, list[CompactResponder]]
    warnings: list[Warning]


class BatchRowError(BaseModel):
    """A batch row whose coordinates could not be used."""

    error: str


class BatchResponse(BaseModel):
    """Batch answer: one entry per input point, in input order."""

    count: int
    category: CategoryRoute | None
    results: list[BatchRow | BatchRowError]
    request_id: str | None


# --- request bodies (documented; parsed by the handlers) -----------------------------------


class _RouteOptions(BaseModel):
    category: str | None = Field(None, description="Report category code.", examples=["fire"])
    k: int | None = Field(None, ge=1, le=20, description="Responders per type (default 3).")


class LonLatBody(_RouteOptions):
    """A point in EPSG:4326, optionally uncertain by ``radius_m``."""

    lon: float = Field(ge=-180, le=180, examples=[106.8272])
    lat: float = Field(ge=-90, le=90, examples=[-6.1754])
    radius_m: float | None = Field(
        None, gt=0, le=50_000, description="Uncertainty radius: routes the circle's overlaps."
    )


class XYBody(_RouteOptions):
    """A point in another CRS, e.g. ``{"x": ..., "y": ..., "crs": "EPSG:32748"}``."""

    x: float
    y: float
    crs: str = Field(examples=["EPSG:32748"])


class PointGeometry(_RouteOptions):
    """A GeoJSON Point."""

    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=3)


class PolygonGeometry(_RouteOptions):
    """A GeoJSON Polygon (an uncertain location)."""

    type: Literal["Polygon"]
    coordinates: list[list[list[float]]]


class RouteFeature(_RouteOptions):
    """A GeoJSON Feature holding a Point or Polygon."""

    type: Literal["Feature"]
    geometry: PointGeometry | PolygonGeometry
    properties: dict[str, Any] | None = None


class PointFeature(BaseModel):
    """A GeoJSON Feature with a Point geometry."""

    type: Literal["Feature"]
    geometry: PointGeometry
    properties: dict[str, Any] | None = None


class BatchPoints(BaseModel):
    """Batch body: ``[[lon, lat], ...]``."""

    points: list[list[float]] = Field(examples=[[[106.8272, -6.1754], [106.80, -6.20]]])
    category: str | None = None
    k: int | None = Field(None, ge=1, le=20)


class BatchFeatureCollection(BaseModel):
    """Batch body: a GeoJSON FeatureCollection of Points."""

    type: Literal["FeatureCollection"]
    features: list[PointFeature]
    category: str | None = None
    k: int | None = Field(None, ge=1, le=20)


_BODY_MODELS: tuple[type[BaseModel], ...] = (
    Problem,
    LonLatBody,
    XYBody,
    PointGeometry,
    PolygonGeometry,
    RouteFeature,
    BatchPoints,
    BatchFeatureCollection,
)


def extra_component_schemas() -> dict[str, Any]:
    """Component schemas of the documented request bodies (and ``Problem``)."""
    _, top = models_json_schema(
        [(m, "validation") for m in _BODY_MODELS], ref_template="#/components/schemas/{model}"
    )
    return dict(top.get("$defs", {}))


def body_schema_ref(*names: str) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON request body as one of the named components."""
    refs = [{"$ref": f"#/components/schemas/{n}"} for n in names]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
