"""Report intake's inputs, filters, pages and the privacy view of a report.

``ReportInput`` and ``ReportFilters`` validate what callers send (an ``InputError`` names
every bad field); :func:`report_dict` is the one encoder of a report answer. The stored
record types (``Report``, ``StatusChange``) come from the store.

:func:`public_point` is the one rule for where a report may be shown to anyone who may not
see the subscriber registry (the public Open311 feed, analysts): a report located at a
registered caller's home is shown at a point of its zone, never at the home.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import shapely
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from geo_router.city.coords import Coordinate, box_problem, json_number, parse_bbox
from geo_router.errors import InputError, InvalidCoordinatesError
from geo_router.store.reports_repo import PRIVATE_FIELDS, Report, ReportQuery, StatusChange
from geo_router.store.schema import LiveChannel, ReportChannel, ReportStatus
from geo_router.store.sealed_homes import HOME_SOURCE, scrub_decision

if TYPE_CHECKING:
    from geo_router.city.snapshot import CitySnapshot

__all__ = [
    "MAX_PAGE",
    "PRIVATE_FIELDS",
    "REGISTRY_ROLES",
    "TRANSITIONS",
    "Actor",
    "Location",
    "Page",
    "Report",
    "ReportFilters",
    "ReportInput",
    "ServiceActor",
    "StatusChange",
    "public_point",
    "report_dict",
    "shows_registry",
]

#: Largest page ``ReportService.list`` returns.
MAX_PAGE = 500
#: Roles that may see the subscriber registry, and so a registered caller's home.
REGISTRY_ROLES: tuple[str, ...] = ("admin", "intake")
#: The location source of a report placed at a registered caller's home.
_HOME_SOURCE = HOME_SOURCE
#: Allowed status changes; reopening (closed -> open) is for admins only.
TRANSITIONS: frozenset[tuple[ReportStatus, ReportStatus]] = frozenset(
    {
        ("open", "acknowledged"),
        ("open", "closed"),
        ("acknowledged", "in_progress"),
        ("acknowledged", "closed"),
        ("in_progress", "closed"),
        ("closed", "open"),
    }
)


class Actor(Protocol):
    """Who acts: an API key record, the open-mode principal or a :class:`ServiceActor`."""

    @property
    def id(self) -> str:
        """The key's id (idempotency keys and records are scoped to it)."""
        ...

    @property
    def name(self) -> str:
        """The key's name (for the history)."""
        ...

    @property
    def role(self) -> str:
        """One of ``schema.ROLES``."""
        ...

    @property
    def channel(self) -> str | None:
        """The channel an intake key is bound to, if any."""
        ...


@dataclass(frozen=True, slots=True)
class ServiceActor:
    """An actor for code paths without an API key (CLI, imports, tests)."""

    id: str = "system"
    name: str = "system"
    role: str = "admin"
    channel: str | None = None


def input_error(what: str, exc: ValidationError) -> InputError:
    """A pydantic error as an InputError (InvalidCoordinatesError for location fields)."""
    errors = [
        {"field": ".".join(str(p) for p in err["loc"]) or what, "message": err["msg"]}
        for err in exc.errors()
    ]
    text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    cls = InvalidCoordinatesError if errors[0]["field"].startswith("location") else InputError
    return cls(f"invalid {what}: {text}", detail={"errors": errors})


class Location(BaseModel):
    """A point in GeoJSON order, EPSG:4326 (ranges are checked by the router, which also
    recognises swapped axes)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lon: Coordinate
    lat: Coordinate


class ReportInput(BaseModel):
    """What an intake channel sends to create a report.

    The location comes from ``location`` (source "given"), else ``address`` through the
    geocoder ("geocoded"), else the registered home of ``reporter_phone``
    ("registered_caller"): see :mod:`geo_router.intake.locate`. ``channel`` defaults to the
    API key's channel.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: LiveChannel | None = None
    category: str = Field(min_length=1, max_length=64)
    description: str | None = Field(None, max_length=5000)
    location: Location | None = None
    address: str | None = Field(None, min_length=1, max_length=500)
    reporter_phone: str | None = Field(None, min_length=1, max_length=40)
    media_url: str | None = Field(None, max_length=2000)

    @field_validator("media_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("media_url must be an http(s) URL")
        return value

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> ReportInput:
        """Validate a plain mapping; ``InputError`` naming every bad field."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise input_error("report", exc) from None


class ReportFilters(BaseModel):
    """Filters of ``ReportService.list``; ``zone`` is ``layer:zone_id``.

    ``statuses`` and ``ids`` match any of several values (Open311 queries). ``bbox`` is
    ``minlon,minlat,maxlon,maxlat`` (text or a 4-sequence); naive datetimes are UTC.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    zone: tuple[str, str] | None = None
    category: str | None = None
    status: ReportStatus | None = None
    statuses: tuple[ReportStatus, ...] | None = None
    ids: tuple[str, ...] | None = Field(None, max_length=MAX_PAGE)
    channel: ReportChannel | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=2**31 - 1)

    @field_validator("zone", mode="before")
    @classmethod
    def _split_zone(cls, value: object) -> object:
        if isinstance(value, str):
            layer, sep, zone_id = value.partition(":")
            if not sep or not layer or not zone_id:
                raise ValueError(
                    f"zone must be 'layer:zone_id', e.g. kelurahan:3273010001; got {value!r}"
                )
            return (layer, zone_id)
        return value

    @field_validator("bbox", mode="before")
    @classmethod
    def _read_bbox(cls, value: object) -> object:
        # The one bbox reader (coords.parse_bbox) for text; a sequence gets the same checks.
        try:
            if value is None or isinstance(value, str):
                return parse_bbox(value)
            if isinstance(value, list | tuple) and len(value) == 4:
                box = tuple(json_number(v, "bbox") for v in value)
                problem = box_problem(*box)
                if problem is None:
                    return box
                raise ValueError(f"bbox {list(box)}: {problem}")
        except InputError as exc:
            raise ValueError(exc.message) from None
        raise ValueError("bbox must be minlon,minlat,maxlon,maxlat")

    @field_validator("created_from", "created_to")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @classmethod
    def parse(cls, **values: object) -> ReportFilters:
        """Build filters from loose values (query strings); ``InputError`` naming the field."""
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise input_error("filters", exc) from None

    def query(self) -> ReportQuery:
        """The repository's query for these filters (``status`` narrows ``statuses``)."""
        values = {f.name: getattr(self, f.name) for f in fields(ReportQuery)}
        if self.status is not None:
            wanted = self.statuses or (self.status,)
            values["statuses"] = tuple(s for s in wanted if s == self.status)
        return ReportQuery(**values)


@dataclass(slots=True)
class Page:
    """One page of reports, newest first, with the total matching count."""

    items: list[Report]
    total: int
    limit: int
    offset: int


def shows_registry(actor: Actor | None) -> bool:
    """Whether ``actor`` may see registry data (a caller's home); None is the public."""
    return actor is not None and actor.role in REGISTRY_ROLES


#: Per snapshot and layer: each zone's point (inside the zone), computed once.
_ZONE_POINTS: weakref.WeakKeyDictionary[CitySnapshot, dict[str, dict[str, tuple[float, float]]]] = (
    weakref.WeakKeyDictionary()
)


def _layer_depth(snapshot: CitySnapshot, name: str) -> int:
    depth, parent = 0, snapshot.layers[name].parent
    while parent is not None and parent in snapshot.layers and depth < len(snapshot.layers):
        depth, parent = depth + 1, snapshot.layers[parent].parent
    return depth


def _zone_points(snapshot: CitySnapshot, layer: str) -> dict[str, tuple[float, float]]:
    per_layer = _ZONE_POINTS.setdefault(snapshot, {})
    points = per_layer.get(layer)
    if points is None:
        zones = snapshot.layers[layer]
        inside = shapely.point_on_surface(zones.geometries)
        xs, ys = shapely.get_x(inside), shapely.get_y(inside)
        points = {
            str(zone_id): (float(x), float(y))
            for zone_id, x, y in zip(zones.ids.tolist(), xs.tolist(), ys.tolist(), strict=True)
        }
        per_layer[layer] = points
    return points


def public_point(report: Report, snapshot: CitySnapshot | None) -> tuple[float, float] | None:
    """Where ``report`` may be shown to those who may not see the registry, ``(lon, lat)``.

    A report located at a registered caller's home is shown at a point inside its zone of
    the finest layer that holds it (the zone's point on surface, the same for every report
    there), or at no point when it lies in no zone of ``snapshot`` (or without a snapshot);
    never at the home. Any other report is shown at its own point.
    """
    if report.location_source != _HOME_SOURCE:
        if report.lon is None or report.lat is None:
            return None
        return (report.lon, report.lat)
    if snapshot is None:
        return None
    layers = [name for name in snapshot.layers if name in report.zones]
    layers.sort(key=lambda name: _layer_depth(snapshot, name), reverse=True)
    for name in layers:
        point = _zone_points(snapshot, name).get(report.zones[name])
        if point is not None:
            return point
    return None


def _hide_home(data: dict[str, Any], point: tuple[float, float] | None) -> None:
    """Replace every trace of a caller's home in a report answer (its point, the decision's
    point, and distances and bearings measured from it)."""
    lon, lat = point if point is not None else (None, None)
    data["lon"], data["lat"] = lon, lat
    decision = data.get("decision")
    if not isinstance(decision, dict):
        return
    scrubbed = scrub_decision(decision)
    if "lon" in scrubbed or "lat" in scrubbed:
        scrubbed["lon"], scrubbed["lat"] = lon, lat
    data["decision"] = scrubbed


def report_dict(
    report: Report,
    reporter_phone: str | None = None,
    *,
    registry: bool = True,
    snapshot: CitySnapshot | None = None,
) -> dict[str, Any]:
    """A report as answered: every stored field but the phone's hash and ciphertext.

    ``reporter_phone`` (the number, or its masked form) is added when the caller may see it.
    With ``registry=False`` (the caller may not see the subscriber registry) a report at a
    registered caller's home is shown at its :func:`public_point` in ``snapshot``, with no
    distance or bearing measured from the home.
    """
    data = report.to_dict(include_private=False)
    if not registry and report.location_source == _HOME_SOURCE:
        _hide_home(data, public_point(report, snapshot))
    if reporter_phone is not None:
        data["reporter_phone"] = reporter_phone
    return data
