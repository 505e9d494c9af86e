"""The validation gate of a zone layer: what is wrong with it, and careful repair.

:func:`validate_layer` reports invalid geometries (with shapely's reason), duplicate and
missing ids, non-polygon features, overlaps between zones and gaps in the coverage, with
areas in square metres from a local UTM projection. A report is *refused* when any of the
first four exist or when two zones overlap by more than ``min_overlap_m2``; gaps are only
warnings (a coverage may well have lakes). :func:`repair_layer` fixes invalid features with
``make_valid`` and refuses repairs that change a zone's area by more than 0.1 % or turn it into
something that is not a polygon.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_router.city.coords import get_transformer, local_utm
from geo_router.errors import LayerValidationError, ProfileError

__all__ = [
    "MAX_REPAIR_CHANGE",
    "Gap",
    "InvalidFeature",
    "NonPolygonFeature",
    "Overlap",
    "RepairRecord",
    "ValidationReport",
    "geometry_array",
    "ids_as_str",
    "repair_layer",
    "to_utm",
    "validate_layer",
]

#: A repair may change a zone's area by at most this fraction (0.1 %).
MAX_REPAIR_CHANGE = 0.001

_POLYGONAL = ("Polygon", "MultiPolygon")
_LIST_LIMIT = 10  # how many items a text summary lists per problem


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


@dataclass(frozen=True, slots=True)
class RepairRecord:
    """What ``make_valid`` did to one invalid feature."""

    id: str | None
    reason: str  #: why the input was invalid
    area_before_m2: float
    area_after_m2: float
    change_ratio: float  #: abs(after - before) / before
    type_before: str
    type_after: str

    @property
    def acceptable(self) -> bool:
        """Whether the repair keeps the zone polygonal and its area within 0.1 %."""
        return (
            self.type_after in _POLYGONAL
            and self.type_before in _POLYGONAL
            and self.change_ratio <= MAX_REPAIR_CHANGE
        )


@dataclass(slots=True)
class ValidationReport:
    """Everything the gate found in one layer; ``refused`` says whether it may be served."""

    n_features: int
    invalid: list[InvalidFeature] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    null_ids: list[int] = field(default_factory=list)  #: row numbers
    non_polygon: list[NonPolygonFeature] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    coverage_valid: bool | None = None  #: shapely.coverage_is_valid (edges match exactly)

    @property
    def refused(self) -> bool:
        """True when the layer must not be served (gaps alone are only warnings)."""
        return bool(
            self.invalid or self.duplicate_ids or self.null_ids or self.non_polygon or self.overlaps
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the report."""
        return {
            "n_features": self.n_features,
            "refused": self.refused,
            "invalid": [asdict(f) for f in self.invalid],
            "duplicate_ids": list(self.duplicate_ids),
            "null_ids": [int(r) for r in self.null_ids],
            "non_polygon": [asdict(f) for f in self.non_polygon],
            "overlaps": [asdict(o) for o in self.overlaps],
            "gaps": [asdict(g) for g in self.gaps],
            "coverage_valid": self.coverage_valid,
        }

    def to_text(self) -> str:
        """A short human summary, one problem kind per paragraph."""
        verdict = "REFUSED" if self.refused else "accepted"
        lines = [f"{self.n_features} features: {verdict}"]
        sections: list[tuple[str, list[str]]] = [
            ("invalid geometries", [f"{f.id} (row {f.row}): {f.reason}" for f in self.invalid]),
            ("duplicate ids", list(self.duplicate_ids)),
            ("missing ids (rows)", [str(r) for r in self.null_ids]),
            ("not polygons", [f"{f.id} (row {f.row}): {f.geom_type}" for f in self.non_polygon]),
            ("overlaps", [f"{o.id_a} / {o.id_b}: {o.area_m2:,.1f} m2" for o in self.overlaps]),
            (
                "gaps (warning)",
                [f"{g.area_m2:,.1f} m2 at ({g.lon:.6f}, {g.lat:.6f})" for g in self.gaps],
            ),
        ]
        for title, items in sections:
            if not items:
                continue
            lines.append(f"{title}: {len(items)}")
            lines.extend(f"  - {item}" for item in items[:_LIST_LIMIT])
            if len(items) > _LIST_LIMIT:
                lines.append(f"  ... and {len(items) - _LIST_LIMIT} more")
        if self.coverage_valid is False:
            lines.append("coverage edges do not match exactly (shapely.coverage_is_valid)")
        return "\n".join(lines)


def ids_as_str(values: pd.Series | np.ndarray) -> np.ndarray:
    """Ids as an object array of str (None where missing); integral floats lose their ``.0``.

    A float column of ids like ``104.0`` (pandas' way to hold integers with gaps) becomes
    ``"104"``, so ids compare equal to their integer spelling.
    """
    series = pd.Series(values, copy=False)
    out = np.empty(len(series), dtype=object)
    missing = series.isna().to_numpy()
    if pd.api.types.is_bool_dtype(series.dtype):
        out[:] = series.astype(str).to_numpy()
    elif pd.api.types.is_integer_dtype(series.dtype):
        out[~missing] = series[~missing].astype("int64").astype(str).to_numpy()
    elif pd.api.types.is_float_dtype(series.dtype):
        num = series.to_numpy(np.float64, na_value=np.nan)
        integral = ~missing & (np.mod(num, 1.0) == 0) & (np.abs(num) < 2**53)
        out[integral] = num[integral].astype(np.int64).astype(str)
        rest = ~missing & ~integral
        out[rest] = num[rest].astype(str)
    else:
        out[~missing] = [_scalar_id(v) for v in series[~missing]]
    out[missing] = None
    return out


def _scalar_id(value: Any) -> str:
    """One id from an object column as text (``12.0`` -> ``"12"``)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def geometry_array(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """The active geometry column as a numpy object array of shapely geometries."""
    return np.asarray(gdf.geometry.array, dtype=object)


def to_utm(geoms: np.ndarray, utm: Any) -> np.ndarray:
    """Project lon/lat shapely geometries to a (UTM) CRS, vectorized over coordinates."""
    transformer = get_transformer("EPSG:4326", utm)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    projected: np.ndarray = shapely.transform(geoms, project)
    return projected


def _layer_utm(geoms: np.ndarray) -> Any:
    """The local UTM CRS of a set of lon/lat geometries."""
    bounds = shapely.bounds(geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)])
    if len(bounds) == 0:
        return local_utm(0.0, 0.0)
    return local_utm(bounds[:, [0, 2]], bounds[:, [1, 3]])


def _geom_type_names(geoms: np.ndarray) -> np.ndarray:
    """Geometry type name per feature; ``missing`` and ``empty`` for those."""
    names = np.array([g.geom_type if g is not None else "missing" for g in geoms], dtype=object)
    empty = ~shapely.is_missing(geoms) & shapely.is_empty(geoms)
    names[empty] = "empty"
    return names


def _polygonal_parts(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygon parts of each geometry (Polygon, MultiPolygon or empty)."""
    out = np.empty(len(geoms), dtype=object)
    for i, geom in enumerate(geoms):  # loops over features, not points
        parts = shapely.get_parts(geom)
        polys = [p for p in parts if p.geom_type == "Polygon" and not p.is_empty]
        if not polys:
            out[i] = shapely.Polygon()
        elif len(polys) == 1:
            out[i] = polys[0]
        else:
            out[i] = shapely.MultiPolygon(polys)
    return out


def _overlaps(geoms_m: np.ndarray, ids: np.ndarray, min_area_m2: float) -> list[Overlap]:
    """Pairs of zones whose interiors overlap by more than ``min_area_m2``."""
    tree = shapely.STRtree(geoms_m)
    left, right = tree.query(geoms_m, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    interior = shapely.relate_pattern(geoms_m[left], geoms_m[right], "T********")
    left, right = left[interior], right[interior]
    areas = shapely.area(shapely.intersection(geoms_m[left], geoms_m[right]))
    big = areas > min_area_m2
    found = [
        Overlap(str(ids[a]), str(ids[b]), float(area))
        for a, b, area in zip(left[big], right[big], areas[big], strict=True)
    ]
    return sorted(found, key=lambda o: -o.area_m2)


def _gaps(geoms_m: np.ndarray, utm: Any, min_area_m2: float) -> list[Gap]:
    """Holes of the union of the zones (areas inside the coverage that no zone covers)."""
    union = shapely.union_all(geoms_m)
    polygons = shapely.get_parts(union)
    polygons = polygons[shapely.get_type_id(polygons) == 3]
    rings: list[Any] = []
    for poly in polygons:  # loops over union parts, not points
        rings.extend(poly.interiors)
    if not rings:
        return []
    holes = shapely.polygons(np.array(rings, dtype=object))
    areas = shapely.area(holes)
    keep = areas > min_area_m2
    holes, areas = holes[keep], areas[keep]
    where = shapely.get_coordinates(shapely.point_on_surface(holes))
    lon, lat = get_transformer(utm, "EPSG:4326").transform(where[:, 0], where[:, 1])
    gaps = [
        Gap(float(a), float(x), float(y))
        for a, x, y in zip(areas, np.atleast_1d(lon), np.atleast_1d(lat), strict=True)
    ]
    return sorted(gaps, key=lambda g: -g.area_m2)


def validate_layer(
    gdf: gpd.GeoDataFrame,
    id_field: str,
    *,
    min_overlap_m2: float = 1.0,
    min_gap_m2: float = 1.0,
) -> ValidationReport:
    """Check a zone layer (lon/lat EPSG:4326) and report every problem.

    Parameters
    ----------
    gdf
        The zones, one feature per zone, in EPSG:4326.
    id_field
        Column holding the zone id.
    min_overlap_m2, min_gap_m2
        Overlaps and gaps at or below these areas are not reported.

    Returns
    -------
    ValidationReport
        ``refused`` is True on invalid geometries, duplicate or missing ids, non-polygon
        features or overlaps above ``min_overlap_m2``.
    """
    if id_field not in gdf.columns:
        raise ProfileError(
            f"id field {id_field!r} not found (columns: {', '.join(map(str, gdf.columns))})",
            detail={"field": id_field, "columns": [str(c) for c in gdf.columns]},
        )
    ids = ids_as_str(gdf[id_field])
    geoms = geometry_array(gdf)
    report = ValidationReport(n_features=len(gdf))

    missing_id = np.array([i is None for i in ids], dtype=bool)
    report.null_ids = [int(r) for r in np.flatnonzero(missing_id)]
    present = pd.Series(ids[~missing_id])
    report.duplicate_ids = sorted(present[present.duplicated()].unique().tolist())

    types = _geom_type_names(geoms)
    polygonal = np.isin(types, _POLYGONAL)
    report.non_polygon = [
        NonPolygonFeature(ids[r], int(r), str(types[r])) for r in np.flatnonzero(~polygonal)
    ]
    valid = np.zeros(len(geoms), dtype=bool)
    valid[polygonal] = shapely.is_valid(geoms[polygonal])
    bad = np.flatnonzero(polygonal & ~valid)
    reasons = shapely.is_valid_reason(geoms[bad]) if len(bad) else []
    report.invalid = [
        InvalidFeature(ids[r], int(r), str(why)) for r, why in zip(bad, reasons, strict=True)
    ]

    rows = np.flatnonzero(polygonal)
    if len(rows) == 0:
        return report
    usable = geoms[rows].copy()
    broken = ~valid[rows]
    if broken.any():
        # measure overlaps and gaps on the repaired shapes, or GEOS would refuse to
        usable[broken] = _polygonal_parts(shapely.make_valid(usable[broken]))
    utm = _layer_utm(usable)
    usable_m = to_utm(usable, utm)
    zone_ids = np.array(
        [i if i is not None else f"row {r}" for i, r in zip(ids[rows], rows, strict=False)]
    )
    report.coverage_valid = bool(shapely.coverage_is_valid(usable))
    report.overlaps = _overlaps(usable_m, zone_ids, min_overlap_m2)
    report.gaps = _gaps(usable_m, utm, min_gap_m2)
    return report


def repair_layer(
    gdf: gpd.GeoDataFrame, *, id_field: str | None = None
) -> tuple[gpd.GeoDataFrame, list[RepairRecord]]:
    """Repair invalid features with ``make_valid``, keeping only their polygonal parts.

    Parameters
    ----------
    gdf
        The zones in EPSG:4326.
    id_field
        Column naming each zone in the records; the frame's index when None.

    Returns
    -------
    (GeoDataFrame, list of RepairRecord)
        A copy with the repaired geometries, and one record per repaired feature.

    Raises
    ------
    LayerValidationError
        When a repair changes a zone's area by more than 0.1 % or its type family
        (Polygon and MultiPolygon are the same family; anything else is a change).
    """
    geoms = geometry_array(gdf)
    present = ~shapely.is_missing(geoms)
    invalid = np.zeros(len(geoms), dtype=bool)
    invalid[present] = ~shapely.is_valid(geoms[present])
    rows = np.flatnonzero(invalid)
    if len(rows) == 0:
        return gdf.copy(), []
    ids = ids_as_str(gdf[id_field]) if id_field is not None else ids_as_str(gdf.index.to_numpy())
    before = geoms[rows]
    reasons = shapely.is_valid_reason(before)
    after = _polygonal_parts(shapely.make_valid(before, method="structure", keep_collapsed=False))
    utm = _layer_utm(geoms[present])
    area_before = shapely.area(to_utm(before, utm))
    area_after = shapely.area(to_utm(after, utm))
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(area_after - area_before) / area_before
    change = np.where(area_before > 0, change, np.where(area_after == area_before, 0.0, np.inf))
    types_before = _geom_type_names(before)
    types_after = _geom_type_names(after)
    records = [
        RepairRecord(
            id=ids[r],
            reason=str(reasons[k]),
            area_before_m2=float(area_before[k]),
            area_after_m2=float(area_after[k]),
            change_ratio=float(change[k]),
            type_before=str(types_before[k]),
            type_after=str(types_after[k]),
        )
        for k, r in enumerate(rows)
    ]
    refused = [rec for rec in records if not rec.acceptable]
    if refused:
        listed = "; ".join(
            f"{rec.id}: {rec.reason} -> {rec.type_after}, area change {rec.change_ratio:.4%}"
            for rec in refused[:_LIST_LIMIT]
        )
        raise LayerValidationError(
            f"{len(refused)} feature(s) cannot be repaired safely "
            f"(more than {MAX_REPAIR_CHANGE:.1%} area change or not polygonal): {listed}",
            detail={"report": {"repairs": [asdict(rec) for rec in records]}},
        )
    out = gdf.copy()
    fixed = geoms.copy()
    fixed[rows] = after
    out[gdf.geometry.name] = gpd.GeoSeries(fixed, index=gdf.index, crs=gdf.crs)
    return out, records
