"""Topology of one layer: overlaps between zones and gaps (holes) in their union.

Overlaps above the area threshold are errors, smaller ones sliver warnings. Gaps are always
warnings here: without a reference the gate cannot tell a lake from a hole; the coverage check
(:mod:`geo_router.city.validation.coverage`) blocks a layer that leaves part of its reference
uncovered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo_router.city.validation.findings import ERROR, WARNING, Code, Finding
from geo_router.city.validation.geometry import area_text, areas_m2, geojson
from geo_router.city.validation.report import Gap, Overlap

__all__ = ["gap_findings", "overlap_findings"]


def overlap_findings(
    geoms: np.ndarray, ids: np.ndarray, utm: Any, min_area_m2: float
) -> tuple[list[Overlap], list[Finding]]:
    """Pairs of zones whose interiors overlap: those above ``min_area_m2``, and all findings.

    Zones are compared in lon/lat, where their edges are straight as drawn (projected, a vertex
    in the middle of a neighbour's edge would bulge across it by a curvature sliver); only
    the overlaps are projected to ``utm`` to measure them.
    """
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    interior = shapely.relate_pattern(geoms[left], geoms[right], "T********")
    left, right = left[interior], right[interior]
    shapes = shapely.intersection(geoms[left], geoms[right])
    areas = areas_m2(shapes, utm)
    order = np.argsort(-areas, kind="stable")
    left, right, areas, shapes = left[order], right[order], areas[order], shapes[order]
    overlaps: list[Overlap] = []
    findings: list[Finding] = []
    for a, b, area, shape in zip(left, right, areas, shapes, strict=True):
        id_a, id_b = str(ids[a]), str(ids[b])
        big = bool(area > min_area_m2)
        if big:
            overlaps.append(Overlap(id_a, id_b, float(area)))
        findings.append(
            Finding(
                code=Code.OVERLAP if big else Code.OVERLAP_SLIVER,
                severity=ERROR if big else WARNING,
                message=f"{id_a} / {id_b}: {area_text(area)} m2 overlap"
                + ("" if big else f" (at most {min_area_m2:g} m2: a sliver)"),
                ids=(id_a, id_b),
                location=geojson(shape),
                area_m2=float(area),
            )
        )
    return overlaps, findings


def gap_findings(
    geoms: np.ndarray, utm: Any, min_area_m2: float
) -> tuple[list[Gap], list[Finding]]:
    """Holes of the union of the zones: those above ``min_area_m2``, and all findings."""
    union = shapely.union_all(geoms)
    polygons = shapely.get_parts(union)
    polygons = polygons[shapely.get_type_id(polygons) == 3]
    rings = [ring for poly in polygons for ring in poly.interiors]  # union parts, not points
    if not rings:
        return [], []
    holes = shapely.polygons(np.array(rings, dtype=object))
    areas = areas_m2(holes, utm)
    order = np.argsort(-areas, kind="stable")
    holes, areas = holes[order], areas[order]
    where = shapely.get_coordinates(shapely.point_on_surface(holes))
    gaps: list[Gap] = []
    findings: list[Finding] = []
    for hole, area, (lon, lat) in zip(holes, areas, where, strict=True):
        big = bool(area > min_area_m2)
        if big:
            gaps.append(Gap(float(area), float(lon), float(lat)))
        findings.append(
            Finding(
                code=Code.GAP if big else Code.GAP_SLIVER,
                severity=WARNING,
                message=f"{area_text(area)} m2 no zone covers, at ({lon:.6f}, {lat:.6f})",
                location=geojson(hole),
                area_m2=float(area),
                details={"point": [float(lon), float(lat)]},
            )
        )
    return gaps, findings
