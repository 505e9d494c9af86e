"""Coverage: does a layer cover its reference (the current layer's union, or a city boundary)?

Parts of the reference that no zone covers, and parts of the zones outside the reference, are
errors above the area threshold and sliver warnings below it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo_router.city.validation.findings import ERROR, WARNING, Code, Finding
from geo_router.city.validation.geometry import area_text, areas_m2, geojson

__all__ = ["coverage_findings"]


def _part_findings(
    leftover: Any,
    utm: Any,
    min_area_m2: float,
    codes: tuple[Code, Code],
    what: str,
) -> list[Finding]:
    """One finding per polygon part of ``leftover``, largest first."""
    parts = shapely.get_parts(leftover)
    parts = parts[np.isin(shapely.get_type_id(parts), (3, 6)) & ~shapely.is_empty(parts)]
    if len(parts) == 0:
        return []
    areas = areas_m2(parts, utm)
    order = np.argsort(-areas, kind="stable")
    parts, areas = parts[order], areas[order]
    where = shapely.get_coordinates(shapely.point_on_surface(parts))
    findings = []
    for part, area, (lon, lat) in zip(parts, areas, where, strict=True):
        if area <= 0:
            continue
        big = bool(area > min_area_m2)
        findings.append(
            Finding(
                code=codes[0] if big else codes[1],
                severity=ERROR if big else WARNING,
                message=f"{area_text(area)} m2 {what}, at ({lon:.6f}, {lat:.6f})",
                location=geojson(part),
                area_m2=float(area),
                details={"point": [float(lon), float(lat)]},
            )
        )
    return findings


def coverage_findings(
    geoms: np.ndarray,
    reference: Any,
    utm: Any,
    min_area_m2: float,
    *,
    reference_label: str = "the reference",
) -> list[Finding]:
    """Uncovered parts of ``reference`` and parts of ``geoms`` outside it (all lon/lat).

    Parameters
    ----------
    geoms
        The layer's usable (valid, polygonal) zones.
    reference
        The area the layer must cover exactly: a (Multi)Polygon in EPSG:4326.
    utm
        The CRS areas are measured in.
    min_area_m2
        Parts at or below this area are sliver warnings, above it errors.
    reference_label
        How messages name the reference (``the current kelurahan layer``).
    """
    union = shapely.union_all(geoms)
    uncovered = shapely.difference(reference, union)
    outside = shapely.difference(union, reference)
    return _part_findings(
        uncovered,
        utm,
        min_area_m2,
        (Code.UNCOVERED, Code.UNCOVERED_SLIVER),
        f"of {reference_label} that no zone covers",
    ) + _part_findings(
        outside,
        utm,
        min_area_m2,
        (Code.OUTSIDE_COVERAGE, Code.OUTSIDE_COVERAGE_SLIVER),
        f"of the zones outside {reference_label}",
    )
