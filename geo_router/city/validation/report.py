"""The validation report: every finding of the gate, their counts, and whether the layer blocks.

:class:`ValidationReport` keeps the lists today's callers read (``invalid``, ``duplicate_ids``,
``null_ids``, ``non_polygon``, ``overlaps``, ``gaps``) next to ``findings``, the one list the
HTTP answer and the planner page read. ``to_dict()`` has stable keys.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from geo_router.city.validation.findings import ERROR, WARNING, Finding, Thresholds

__all__ = [
    "Gap",
    "InvalidFeature",
    "NonPolygonFeature",
    "Overlap",
    "ValidationReport",
]

_LIST_LIMIT = 10  # how many findings a text summary lists per code

_TITLES = {
    "invalid_geometry": "invalid geometries",
    "empty_geometry": "empty geometries",
    "not_polygon": "not polygons",
    "missing_id": "missing ids",
    "duplicate_id": "duplicate ids",
    "overlap": "overlaps",
    "overlap_sliver": "overlap slivers",
    "gap": "gaps (warning)",
    "gap_sliver": "gap slivers (warning)",
    "uncovered": "uncovered parts of the reference",
    "uncovered_sliver": "uncovered slivers",
    "outside_coverage": "parts outside the reference",
    "outside_coverage_sliver": "slivers outside the reference",
    "not_nested": "not nested in one parent",
    "outside_parents": "outside every parent",
    "nesting_sliver": "nesting slivers",
}


@dataclass(frozen=True, slots=True)
class InvalidFeature:
    """A feature whose geometry is not valid, with shapely's reason."""

    id: str | None
    row: int
    reason: str


@dataclass(frozen=True, slots=True)
class NonPolygonFeature:
    """A feature whose geometry is missing, empty or not a (Multi)Polygon."""

    id: str | None
    row: int
    geom_type: str


@dataclass(frozen=True, slots=True)
class Gap:
    """A hole in the union of the zones, inside the outer boundary of the coverage."""

    area_m2: float
    lon: float  #: a point inside the gap
    lat: float


@dataclass(frozen=True, slots=True)
class Overlap:
    """Two zones whose interiors overlap."""

    id_a: str
    id_b: str
    area_m2: float


@dataclass(slots=True)
class ValidationReport:
    """Everything the gate found in one layer; ``blocking`` says whether it must not be served."""

    n_features: int
    invalid: list[InvalidFeature] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    null_ids: list[int] = field(default_factory=list)  #: row numbers
    non_polygon: list[NonPolygonFeature] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)  #: above the area threshold
    gaps: list[Gap] = field(default_factory=list)  #: above the area threshold
    coverage_valid: bool | None = None  #: shapely.coverage_is_valid (edges match exactly)
    findings: list[Finding] = field(default_factory=list)
    layer: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def blocking(self) -> bool:
        """True when any finding is an error (warnings alone can be accepted with a note)."""
        return any(f.is_error for f in self.findings)

    @property
    def refused(self) -> bool:
        """The same as :attr:`blocking` (the name today's callers use)."""
        return self.blocking

    @property
    def counts(self) -> dict[str, Any]:
        """Findings per severity and per code."""
        by_severity = Counter(f.severity for f in self.findings)
        by_code = Counter(str(f.code) for f in self.findings)
        return {
            "errors": by_severity.get(ERROR, 0),
            "warnings": by_severity.get(WARNING, 0),
            "by_code": dict(sorted(by_code.items())),
        }

    def errors(self) -> list[Finding]:
        """The blocking findings."""
        return [f for f in self.findings if f.is_error]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the report (stable keys)."""
        return {
            "layer": self.layer,
            "n_features": self.n_features,
            "blocking": self.blocking,
            "refused": self.refused,
            "counts": self.counts,
            "thresholds": self.thresholds.to_dict(),
            "coverage_valid": self.coverage_valid,
            "findings": [f.to_dict() for f in self.findings],
            "invalid": [asdict(f) for f in self.invalid],
            "duplicate_ids": list(self.duplicate_ids),
            "null_ids": [int(r) for r in self.null_ids],
            "non_polygon": [asdict(f) for f in self.non_polygon],
            "overlaps": [asdict(o) for o in self.overlaps],
            "gaps": [asdict(g) for g in self.gaps],
        }

    def to_text(self) -> str:
        """A short human summary: the verdict, then the findings grouped by code."""
        verdict = "REFUSED" if self.blocking else "accepted"
        counts = self.counts
        name = f"{self.layer}: " if self.layer else ""
        lines = [
            f"{name}{self.n_features} features: {verdict} "
            f"({counts['errors']} errors, {counts['warnings']} warnings)"
        ]
        groups: dict[str, list[Finding]] = {}
        for finding in self.findings:
            groups.setdefault(str(finding.code), []).append(finding)
        for code, items in groups.items():
            severity = items[0].severity
            lines.append(f"{_TITLES.get(code, code)}: {len(items)} ({severity}, {code})")
            lines.extend(f"  - {f.message}" for f in items[:_LIST_LIMIT])
            if len(items) > _LIST_LIMIT:
                lines.append(f"  ... and {len(items) - _LIST_LIMIT} more")
        if self.coverage_valid is False:
            lines.append("coverage edges do not match exactly (shapely.coverage_is_valid)")
        return "\n".join(lines)
