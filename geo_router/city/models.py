"""Result types of the engine: plain, slotted dataclasses.

They are what the library returns and what the API serializes as they are (orjson handles
dataclasses natively, so no copy into pydantic is needed on the hot path). Ids are always
strings. Distances are metres, bearings degrees clockwise from north.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class ZoneStatus(StrEnum):
    """How a point relates to one zone layer."""

    INSIDE = "inside"  #: covered by exactly one zone, no other zone within the tolerance
    NEAR_BOUNDARY = "near_boundary"  #: covered, and other zones lie within the tolerance
    OUTSIDE_COVERAGE = "outside_coverage"  #: no zone of the layer covers the point
    INVALID = "invalid_coordinates"  #: the coordinates could not be used (bulk routing only)


#: Integer codes used in bulk arrays, in this order.
STATUS_CODES: tuple[ZoneStatus, ...] = (
    ZoneStatus.INSIDE,
    ZoneStatus.NEAR_BOUNDARY,
    ZoneStatus.OUTSIDE_COVERAGE,
    ZoneStatus.INVALID,
)


class Warning(StrEnum):  # the domain word; shadows the builtin only inside this module
    """Warnings attached to a routing answer."""

    OUTSIDE_COVERAGE = "outside_coverage"
    POSSIBLE_AXIS_SWAP = "possible_axis_swap"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A zone that covers the point or lies within the boundary tolerance of it."""

    zone_id: str
    name: str | None
    distance_m: float  #: 0.0 when the zone covers the point, else metres to its boundary


@dataclass(frozen=True, slots=True)
class ZoneMatch:
    """The answer for one layer: primary zone, status and every candidate."""

    layer: str
    version: str
    status: ZoneStatus
    zone_id: str | None
    name: str | None
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Responder:
    """One facility ranked for a point, by geodesic distance."""

    facility_type: str
    facility_id: str
    name: str | None
    distance_m: float
    bearing_deg: float
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class CategoryRoute:
    """What a report category routes to."""

    code: str
    name: str | None
    agency: str
    responders: list[str]
    emergency: bool


@dataclass(frozen=True, slots=True)
class RouteResult:
    """The full routing answer for one location."""

    lon: float
    lat: float
    zones: dict[str, ZoneMatch]
    responders: dict[str, list[Responder]]
    category: CategoryRoute | None
    warnings: list[Warning]


@dataclass(frozen=True, slots=True)
class ZoneShare:
    """A zone overlapped by an uncertain location, with its share of the area."""

    zone_id: str
    name: str | None
    share: float  #: 0..1, fraction of the location's area inside this zone
    area_m2: float


@dataclass(frozen=True, slots=True)
class AreaRouteResult:
    """Routing answer for an uncertain location (a circle or polygon)."""

    route: RouteResult  #: routed at the representative point, primary = largest overlap
    overlaps: dict[str, list[ZoneShare]]  #: per layer, largest share first


@dataclass(slots=True)
class LayerLookup:
    """Bulk zone lookup for n points in one layer, as arrays (CSR for candidates).

    ``primary[i]`` is the zone's row index in the layer (-1 when none); ``status[i]`` an index
    into ``STATUS_CODES``; the candidates of point i are
    ``cand_zone[cand_ptr[i]:cand_ptr[i + 1]]`` with distances ``cand_dist_m[...]``, primary
    first, then by distance.
    """

    primary: np.ndarray  # int32 (n,)
    status: np.ndarray  # int8 (n,)
    cand_ptr: np.ndarray  # int64 (n + 1,)
    cand_zone: np.ndarray  # int32 (m,)
    cand_dist_m: np.ndarray  # float64 (m,)


@dataclass(slots=True)
class NearestLookup:
    """Bulk k-nearest facilities: row indices into the facility set, metres, bearings."""

    index: np.ndarray  # int32 (n, k); -1 where fewer than k facilities exist
    distance_m: np.ndarray  # float64 (n, k); nan where index is -1
    bearing_deg: np.ndarray  # float64 (n, k)


@dataclass(slots=True)
class BulkRoute:
    """Bulk routing of n points: per-layer and per-facility-type arrays."""

    n: int
    valid: np.ndarray  # bool (n,): coordinates usable
    reasons: list[str | None]  # per row, why invalid (None when valid)
    layers: dict[str, LayerLookup]
    nearest: dict[str, NearestLookup]
    axis_swap: np.ndarray  # bool (n,)
