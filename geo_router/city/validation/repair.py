"""Repair only when asked: ``make_valid`` on invalid features, refused when it changes too much.

Each repaired feature gets a :class:`RepairRecord` with its area before and after. A repair
that changes a zone's area by more than the refusal threshold (0.1 % by default, configurable)
or leaves something that is not a polygon is refused, naming the file and the features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from geo_router.city.validation.findings import MAX_REPAIR_CHANGE
from geo_router.city.validation.geometry import (
    POLYGONAL,
    geom_type_names,
    geometry_array,
    ids_as_str,
    layer_utm,
    polygonal_parts,
    to_utm,
)
from geo_router.errors import LayerValidationError

__all__ = ["RepairRecord", "repair_layer"]

_LIST_LIMIT = 10


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

    def acceptable_within(self, max_change: float) -> bool:
        """Whether the repair keeps the zone polygonal and its area within ``max_change``."""
        return (
            self.type_after in POLYGONAL
            and self.type_before in POLYGONAL
            and self.change_ratio <= max_change
        )

    @property
    def acceptable(self) -> bool:
        """Whether the repair keeps the zone polygonal and its area within 0.1 %."""
        return self.acceptable_within(MAX_REPAIR_CHANGE)


def _records(
    gdf: gpd.GeoDataFrame, rows: np.ndarray, after: np.ndarray, id_field: str | None
) -> list[RepairRecord]:
    """One record per repaired row: reason, areas in m2, types before and after."""
    geoms = geometry_array(gdf)
    ids = ids_as_str(gdf[id_field]) if id_field is not None else ids_as_str(gdf.index.to_numpy())
    before = geoms[rows]
    reasons = shapely.is_valid_reason(before)
    utm = layer_utm(geoms[~shapely.is_missing(geoms)])
    area_before = shapely.area(to_utm(before, utm))
    area_after = shapely.area(to_utm(after, utm))
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(area_after - area_before) / area_before
    change = np.where(area_before > 0, change, np.where(area_after == area_before, 0.0, np.inf))
    types_before = geom_type_names(before)
    types_after = geom_type_names(after)
    return [
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


def repair_layer(
    gdf: gpd.GeoDataFrame,
    *,
    id_field: str | None = None,
    max_change: float = MAX_REPAIR_CHANGE,
    source: str | Path | None = None,
) -> tuple[gpd.GeoDataFrame, list[RepairRecord]]:
    """Repair invalid features with ``make_valid``, keeping only their polygonal parts.

    Parameters
    ----------
    gdf
        The zones in EPSG:4326.
    id_field
        Column naming each zone in the records; the frame's index when None.
    max_change
        The largest relative area change a repair may make (0.001 = 0.1 %).
    source
        The file the zones came from; the refusal names it.

    Returns
    -------
    (GeoDataFrame, list of RepairRecord)
        A copy with the repaired geometries, and one record per repaired feature.

    Raises
    ------
    LayerValidationError
        When a repair changes a zone's area by more than ``max_change`` or its type family
        (Polygon and MultiPolygon are the same family; anything else is a change).
    """
    geoms = geometry_array(gdf)
    present = ~shapely.is_missing(geoms)
    invalid = np.zeros(len(geoms), dtype=bool)
    invalid[present] = ~shapely.is_valid(geoms[present])
    rows = np.flatnonzero(invalid)
    if len(rows) == 0:
        return gdf.copy(), []
    after = polygonal_parts(
        shapely.make_valid(geoms[rows], method="structure", keep_collapsed=False)
    )
    records = _records(gdf, rows, after, id_field)
    refused = [rec for rec in records if not rec.acceptable_within(max_change)]
    if refused:
        listed = "; ".join(
            f"{rec.id}: {rec.reason} -> {rec.type_after}, area "
            f"{rec.area_before_m2:,.1f} -> {rec.area_after_m2:,.1f} m2 ({rec.change_ratio:.4%})"
            for rec in refused[:_LIST_LIMIT]
        )
        where = f"{source}: " if source is not None else ""
        raise LayerValidationError(
            f"{where}{len(refused)} feature(s) cannot be repaired safely "
            f"(more than {max_change:.2%} area change or not polygonal): {listed}",
            detail={
                "path": None if source is None else str(source),
                "max_change": max_change,
                "report": {"repairs": [asdict(rec) for rec in records]},
            },
        )
    out = gdf.copy()
    fixed = geoms.copy()
    fixed[rows] = after
    out[gdf.geometry.name] = gpd.GeoSeries(fixed, index=gdf.index, crs=gdf.crs)
    return out, records
