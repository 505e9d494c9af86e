"""The validation gate of one zone layer: every finding, with its code, severity and location.

:func:`validate_layer` reports invalid geometries (with shapely's reason and the point it
names), empty and non-polygon features, duplicate and missing ids, overlaps and gaps with their
areas in square metres (local UTM), and, when given, coverage of a reference and nesting in a
parent layer (or of child layers in this one). Errors block the layer; warnings (slivers below
the area threshold, gaps that may be lakes) can be accepted with a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_router.city.validation.coverage import coverage_findings
from geo_router.city.validation.findings import ERROR, Code, Finding, Thresholds
from geo_router.city.validation.geometry import (
    POLYGONAL,
    geojson,
    geom_type_names,
    geometry_array,
    ids_as_str,
    layer_utm,
    polygonal_parts,
    reason_point,
)
from geo_router.city.validation.nesting import Zones, nesting_findings
from geo_router.city.validation.report import InvalidFeature, NonPolygonFeature, ValidationReport
from geo_router.city.validation.topology import gap_findings, overlap_findings
from geo_router.errors import ProfileError

__all__ = ["validate_layer"]


@dataclass(frozen=True, slots=True)
class _Usable:
    """The checked layer's polygonal zones (invalid ones repaired for measuring only)."""

    name: str
    ids: np.ndarray
    geometries: np.ndarray


def _id_findings(ids: np.ndarray, geoms: np.ndarray) -> tuple[list[int], list[str], list[Finding]]:
    """Rows without an id, duplicated ids, and their findings."""
    missing = np.array([i is None for i in ids], dtype=bool)
    null_rows = [int(r) for r in np.flatnonzero(missing)]
    present = pd.Series(ids[~missing], index=np.flatnonzero(~missing))
    repeated = present[present.duplicated(keep=False)]
    groups = repeated.groupby(repeated, sort=True).groups  # id -> its rows, in one pass
    duplicated = [str(dup) for dup in groups]
    findings = [
        Finding(
            code=Code.MISSING_ID,
            severity=ERROR,
            message=f"row {r}: no id",
            ids=(f"row {r}",),
            location=_surface_point(geoms[r]),
            details={"row": r},
        )
        for r in null_rows
    ]
    for dup, index in groups.items():
        rows = [int(r) for r in index]
        findings.append(
            Finding(
                code=Code.DUPLICATE_ID,
                severity=ERROR,
                message=f"{dup}: id used by {len(rows)} features (rows {_rows(rows)})",
                ids=(str(dup),),
                location=_surface_point(geoms[rows[0]]),
                details={"rows": rows},
            )
        )
    return null_rows, duplicated, findings


def _rows(rows: list[int]) -> str:
    """Row numbers as ``1, 4, 9``."""
    return ", ".join(map(str, rows))


def _surface_point(geom: Any) -> dict[str, Any] | None:
    """A point inside a geometry as GeoJSON (None when there is none)."""
    if geom is None or shapely.is_empty(geom):
        return None
    try:
        return geojson(shapely.point_on_surface(geom))
    except shapely.errors.GEOSException:  # some invalid shapes have no surface point
        return geojson(shapely.centroid(geom))


def _label(ids: np.ndarray, row: int) -> str:
    """A feature's id, or ``row N`` when it has none."""
    return str(ids[row]) if ids[row] is not None else f"row {row}"


def _geometry_findings(
    ids: np.ndarray, geoms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[NonPolygonFeature], list[InvalidFeature], list[Finding]]:
    """Polygonal and valid masks, non-polygon and invalid features, and their findings."""
    types = geom_type_names(geoms)
    polygonal = np.isin(types, POLYGONAL)
    non_polygon = [
        NonPolygonFeature(ids[r], int(r), str(types[r])) for r in np.flatnonzero(~polygonal)
    ]
    findings = [
        Finding(
            code=Code.EMPTY_GEOMETRY if f.geom_type in ("missing", "empty") else Code.NOT_POLYGON,
            severity=ERROR,
            message=f"{_label(ids, f.row)} (row {f.row}): {f.geom_type} geometry, not a polygon",
            ids=(_label(ids, f.row),),
            location=geojson(geoms[f.row]) if f.geom_type not in ("missing", "empty") else None,
            details={"row": f.row, "geom_type": f.geom_type},
        )
        for f in non_polygon
    ]
    valid = np.zeros(len(geoms), dtype=bool)
    valid[polygonal] = shapely.is_valid(geoms[polygonal])
    bad = np.flatnonzero(polygonal & ~valid)
    reasons = shapely.is_valid_reason(geoms[bad]) if len(bad) else []
    invalid = [
        InvalidFeature(ids[r], int(r), str(why)) for r, why in zip(bad, reasons, strict=True)
    ]
    findings += [
        Finding(
            code=Code.INVALID_GEOMETRY,
            severity=ERROR,
            message=f"{_label(ids, f.row)} (row {f.row}): {f.reason}",
            ids=(_label(ids, f.row),),
            location=reason_point(f.reason) or _surface_point(geoms[f.row]),
            details={"row": f.row, "reason": f.reason},
        )
        for f in invalid
    ]
    return polygonal, valid, non_polygon, invalid, findings


def validate_layer(
    gdf: gpd.GeoDataFrame,
    id_field: str,
    *,
    min_overlap_m2: float | None = None,
    min_gap_m2: float | None = None,
    thresholds: Thresholds | None = None,
    layer: str | None = None,
    reference: Any = None,
    reference_label: str = "the reference",
    parent: Zones | None = None,
    children: Sequence[Zones] = (),
) -> ValidationReport:
    """Check a zone layer (lon/lat EPSG:4326) and report every problem.

    Parameters
    ----------
    gdf
        The zones, one feature per zone, in EPSG:4326.
    id_field
        Column holding the zone id.
    min_overlap_m2, min_gap_m2
        Overlaps and gaps above these areas are listed in ``overlaps`` and ``gaps`` (and are
        ``overlap``/``gap`` findings); smaller ones are sliver warnings. Default:
        ``thresholds.min_area_m2``.
    thresholds
        The gate's tolerances (area threshold, nesting share).
    layer
        The layer's name (needed for nesting messages; ``layer`` when None).
    reference
        A (Multi)Polygon in EPSG:4326 the layer must cover exactly (coverage check).
    reference_label
        How coverage messages name the reference.
    parent
        The current parent layer: every zone of this layer must lie in one of its zones.
    children
        Current child layers: each of their zones must lie in one zone of this layer.

    Returns
    -------
    ValidationReport
        ``blocking`` (alias ``refused``) is True when any finding is an error.
    """
    if id_field not in gdf.columns:
        raise ProfileError(
            f"id field {id_field!r} not found (columns: {', '.join(map(str, gdf.columns))})",
            detail={"field": id_field, "columns": [str(c) for c in gdf.columns]},
        )
    limits = thresholds or Thresholds()
    name = layer or "layer"
    ids = ids_as_str(gdf[id_field])
    geoms = geometry_array(gdf)
    report = ValidationReport(n_features=len(gdf), layer=layer, thresholds=limits)
    report.null_ids, report.duplicate_ids, id_found = _id_findings(ids, geoms)
    polygonal, valid, report.non_polygon, report.invalid, geom_found = _geometry_findings(
        ids, geoms
    )
    report.findings = geom_found + id_found
    rows = np.flatnonzero(polygonal)
    if len(rows) == 0:
        return report
    usable = geoms[rows].copy()
    broken = ~valid[rows]
    if broken.any():
        # measure the rest on the repaired shapes, or GEOS would refuse to
        usable[broken] = polygonal_parts(shapely.make_valid(usable[broken]))
    utm = layer_utm(usable)
    zone_ids = np.asarray([_label(ids, int(r)) for r in rows], dtype=object)
    report.coverage_valid = bool(shapely.coverage_is_valid(usable))
    min_overlap = limits.min_area_m2 if min_overlap_m2 is None else min_overlap_m2
    min_gap = limits.min_area_m2 if min_gap_m2 is None else min_gap_m2
    report.overlaps, found = overlap_findings(usable, zone_ids, utm, min_overlap)
    report.findings += found
    report.gaps, found = gap_findings(usable, utm, min_gap)
    report.findings += found
    if reference is not None:
        report.findings += coverage_findings(
            usable, reference, utm, limits.min_area_m2, reference_label=reference_label
        )
    this = _Usable(name, zone_ids, usable)
    pairs = ([(this, parent)] if parent is not None else []) + [(c, this) for c in children]
    for child_zones, parent_zones in pairs:
        report.findings += nesting_findings(
            child_zones,
            parent_zones,
            utm,
            min_area_m2=limits.min_area_m2,
            nesting_share=limits.nesting_share,
            checked_layer=name,
        )
    return report
