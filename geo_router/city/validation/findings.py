"""What the validation gate finds: one :class:`Finding` per problem, and the thresholds it uses.

Each finding has a machine-readable ``code`` (the :class:`Code` vocabulary), a ``severity``
(an ``error`` blocks the layer; a ``warning``, e.g. a sliver below the area threshold, can be
accepted with a note), the feature ids it concerns and a ``location``: a GeoJSON geometry in
EPSG:4326, lon/lat order (the offending point or the offending shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_MIN_AREA_M2",
    "DEFAULT_NESTING_SHARE",
    "ERROR",
    "MAX_REPAIR_CHANGE",
    "WARNING",
    "Code",
    "Finding",
    "Thresholds",
]

ERROR = "error"
WARNING = "warning"

#: Gaps, overlaps, uncovered parts and nesting leftovers above this area are errors.
DEFAULT_MIN_AREA_M2 = 1.0
#: A child zone must have at least this share of its area inside one parent.
DEFAULT_NESTING_SHARE = 0.999
#: A repair may change a zone's area by at most this fraction (0.1 %).
MAX_REPAIR_CHANGE = 0.001


class Code(StrEnum):
    """The machine-readable kinds of finding (stable: the HTTP answer carries them)."""

    INVALID_GEOMETRY = "invalid_geometry"
    EMPTY_GEOMETRY = "empty_geometry"
    NOT_POLYGON = "not_polygon"
    MISSING_ID = "missing_id"
    DUPLICATE_ID = "duplicate_id"
    OVERLAP = "overlap"
    OVERLAP_SLIVER = "overlap_sliver"
    GAP = "gap"
    GAP_SLIVER = "gap_sliver"
    UNCOVERED = "uncovered"
    UNCOVERED_SLIVER = "uncovered_sliver"
    OUTSIDE_COVERAGE = "outside_coverage"
    OUTSIDE_COVERAGE_SLIVER = "outside_coverage_sliver"
    NOT_NESTED = "not_nested"
    OUTSIDE_PARENTS = "outside_parents"
    NESTING_SLIVER = "nesting_sliver"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The gate's tolerances.

    ``min_area_m2`` separates errors from slivers (warnings) for overlaps, uncovered and
    outside parts and nesting leftovers; ``nesting_share`` is the share of a child's area that
    must lie in one parent; ``max_repair_change`` the largest area change a repair may make.
    """

    min_area_m2: float = DEFAULT_MIN_AREA_M2
    nesting_share: float = DEFAULT_NESTING_SHARE
    max_repair_change: float = MAX_REPAIR_CHANGE

    def __post_init__(self) -> None:
        if self.min_area_m2 < 0:
            raise ValueError(f"min_area_m2 must be >= 0, not {self.min_area_m2}")
        if not 0 < self.nesting_share <= 1:
            raise ValueError(f"nesting_share must be in (0, 1], not {self.nesting_share}")
        if self.max_repair_change < 0:
            raise ValueError(f"max_repair_change must be >= 0, not {self.max_repair_change}")

    @classmethod
    def from_settings(cls) -> Thresholds:
        """The thresholds of ``GEO_ROUTER_VALIDATION_*`` (defaults when unset)."""
        from geo_router.settings import validation_settings

        values = validation_settings()
        return cls(
            min_area_m2=values.validation_min_area_m2,
            nesting_share=values.validation_nesting_share,
            max_repair_change=values.validation_max_repair_change,
        )

    def to_dict(self) -> dict[str, float]:
        """The thresholds as plain numbers."""
        return {
            "min_area_m2": self.min_area_m2,
            "nesting_share": self.nesting_share,
            "max_repair_change": self.max_repair_change,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a layer, about one or more features."""

    code: Code
    severity: str  #: ``error`` or ``warning``
    message: str
    ids: tuple[str, ...] = ()  #: the feature id(s) concerned (``row N`` when a feature has none)
    location: dict[str, Any] | None = None  #: GeoJSON geometry, EPSG:4326 lon/lat
    area_m2: float | None = None
    layer: str | None = None  #: the layer the ids belong to, when not the checked one
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        """Whether this finding blocks the layer."""
        return self.severity == ERROR

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary with stable keys."""
        return {
            "code": str(self.code),
            "severity": self.severity,
            "message": self.message,
            "ids": list(self.ids),
            "layer": self.layer,
            "area_m2": self.area_m2,
            "location": self.location,
            "details": self.details,
        }
