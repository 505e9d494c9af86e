"""What a new version of a zone layer would change: zones added, removed, renamed and reshaped.

Zones are matched by id. A zone is *reshaped* when the area it gains or loses is above the area
threshold (1 m2 by default); gained and lost areas are in square metres (local UTM) and in % of
the zone's old area. :meth:`LayerDiff.changed_areas` gives the changed shapes as GeoJSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely

from geo_router.city.validation.findings import DEFAULT_MIN_AREA_M2
from geo_router.city.validation.geometry import geojson, layer_utm, to_utm

__all__ = ["LayerDiff", "RenamedZone", "ReshapedZone", "ZoneArea", "diff_layers"]

_LIST_LIMIT = 10


@dataclass(frozen=True, slots=True)
class ZoneArea:
    """A zone that only one version has, with its area."""

    id: str
    area_m2: float
    name: str | None = None


@dataclass(frozen=True, slots=True)
class RenamedZone:
    """A zone whose name changed."""

    id: str
    old_name: str | None
    new_name: str | None


@dataclass(frozen=True, slots=True)
class ReshapedZone:
    """A zone present in both versions whose boundary moved."""

    id: str
    area_before_m2: float
    area_after_m2: float
    gained_m2: float
    lost_m2: float

    @property
    def gained_pct(self) -> float:
        """Area gained, in % of the old area."""
        return 100.0 * self.gained_m2 / self.area_before_m2 if self.area_before_m2 else 0.0

    @property
    def lost_pct(self) -> float:
        """Area lost, in % of the old area."""
        return 100.0 * self.lost_m2 / self.area_before_m2 if self.area_before_m2 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "id": self.id,
            "area_before_m2": self.area_before_m2,
            "area_after_m2": self.area_after_m2,
            "gained_m2": self.gained_m2,
            "lost_m2": self.lost_m2,
            "gained_pct": self.gained_pct,
            "lost_pct": self.lost_pct,
        }


@dataclass(slots=True)
class LayerDiff:
    """The differences between the current and a new version of one layer."""

    layer: str | None
    added: list[ZoneArea] = field(default_factory=list)
    removed: list[ZoneArea] = field(default_factory=list)
    reshaped: list[ReshapedZone] = field(default_factory=list)
    renamed: list[RenamedZone] = field(default_factory=list)
    unchanged: int = 0
    #: the changed shapes (lon/lat): (kind, id, geometry), kind in added/removed/gained/lost
    shapes: list[tuple[str, str, Any]] = field(default_factory=list, repr=False)

    @property
    def changed(self) -> bool:
        """Whether anything differs."""
        return bool(self.added or self.removed or self.reshaped or self.renamed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (stable keys; shapes via :meth:`changed_areas`)."""
        return {
            "layer": self.layer,
            "counts": {
                "added": len(self.added),
                "removed": len(self.removed),
                "reshaped": len(self.reshaped),
                "renamed": len(self.renamed),
                "unchanged": self.unchanged,
            },
            "added": [{"id": z.id, "name": z.name, "area_m2": z.area_m2} for z in self.added],
            "removed": [{"id": z.id, "name": z.name, "area_m2": z.area_m2} for z in self.removed],
            "reshaped": [z.to_dict() for z in self.reshaped],
            "renamed": [
                {"id": z.id, "old_name": z.old_name, "new_name": z.new_name} for z in self.renamed
            ],
        }

    def changed_areas(self) -> dict[str, Any]:
        """The changed shapes as a GeoJSON FeatureCollection (EPSG:4326)."""
        return {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "properties": {"change": kind, "id": zid}, "geometry": geom}
                for kind, zid, shape in self.shapes
                if (geom := geojson(shape)) is not None
            ],
        }

    def to_text(self) -> str:
        """A short human summary of what changes."""
        c = self.to_dict()["counts"]
        lines = [
            f"what changes{f' in {self.layer}' if self.layer else ''}: {c['added']} added, "
            f"{c['removed']} removed, {c['reshaped']} reshaped, {c['renamed']} renamed, "
            f"{c['unchanged']} unchanged"
        ]
        items = [f"  + {z.id}: {z.area_m2:,.0f} m2" for z in self.added]
        items += [f"  - {z.id}: {z.area_m2:,.0f} m2" for z in self.removed]
        items += [
            f"  ~ {z.id}: +{z.gained_m2:,.0f} m2 ({z.gained_pct:.2f}%), "
            f"-{z.lost_m2:,.0f} m2 ({z.lost_pct:.2f}%)"
            for z in self.reshaped
        ]
        items += [f"  = {z.id}: renamed {z.old_name!r} -> {z.new_name!r}" for z in self.renamed]
        lines += items[: _LIST_LIMIT * 2]
        if len(items) > _LIST_LIMIT * 2:
            lines.append(f"  ... and {len(items) - _LIST_LIMIT * 2} more")
        return "\n".join(lines)


def _valid(geoms: Any) -> np.ndarray:
    """Geometries made valid where they are not (so overlay operations never raise)."""
    arr = np.asarray(geoms, dtype=object).copy()
    bad = ~shapely.is_valid(arr)
    if bad.any():
        arr[bad] = shapely.make_valid(arr[bad])
    return arr


def _first_rows(ids: Any) -> pd.Series:
    """Row of the first feature with each id (duplicates are the gate's business)."""
    series = pd.Series(np.asarray(ids, dtype=object)).astype(str)
    return pd.Series(series.index, index=series).groupby(level=0).first()


def _name(names: Any, row: int) -> str | None:
    """A zone's name, when the layer has names."""
    if names is None or names[row] is None:
        return None
    return str(names[row])


def diff_layers(
    old_ids: Any,
    old_geoms: Any,
    new_ids: Any,
    new_geoms: Any,
    *,
    old_names: Any = None,
    new_names: Any = None,
    min_area_m2: float = DEFAULT_MIN_AREA_M2,
    layer: str | None = None,
) -> LayerDiff:
    """Compare two versions of a layer (lon/lat geometries), zones matched by id.

    Parameters
    ----------
    old_ids, old_geoms, new_ids, new_geoms
        Parallel arrays of ids (str) and (Multi)Polygons in EPSG:4326.
    old_names, new_names
        Zone names, to report renames; None when the layer has none.
    min_area_m2
        A zone is reshaped when it gains or loses more than this area.
    layer
        The layer's name, for the summary.
    """
    old = _valid(old_geoms)
    new = _valid(new_geoms)
    utm = layer_utm(np.concatenate([old, new]))
    old_area = shapely.area(to_utm(old, utm))
    new_area = shapely.area(to_utm(new, utm))
    old_rows, new_rows = _first_rows(old_ids), _first_rows(new_ids)
    diff = LayerDiff(layer=layer)
    for zid in sorted(set(new_rows.index) - set(old_rows.index)):
        row = int(new_rows[zid])
        diff.added.append(ZoneArea(zid, float(new_area[row]), _name(new_names, row)))
        diff.shapes.append(("added", zid, new[row]))
    for zid in sorted(set(old_rows.index) - set(new_rows.index)):
        row = int(old_rows[zid])
        diff.removed.append(ZoneArea(zid, float(old_area[row]), _name(old_names, row)))
        diff.shapes.append(("removed", zid, old[row]))
    common = sorted(set(old_rows.index) & set(new_rows.index))
    if not common:
        return diff
    o = old_rows[common].to_numpy(dtype=np.int64)
    n = new_rows[common].to_numpy(dtype=np.int64)
    gained_shapes = shapely.difference(new[n], old[o])
    lost_shapes = shapely.difference(old[o], new[n])
    gained = shapely.area(to_utm(gained_shapes, utm))
    lost = shapely.area(to_utm(lost_shapes, utm))
    moved = (gained > min_area_m2) | (lost > min_area_m2)
    for m in np.flatnonzero(moved):
        k = int(m)
        zid = common[k]
        diff.reshaped.append(
            ReshapedZone(
                zid, float(old_area[o[k]]), float(new_area[n[k]]), float(gained[k]), float(lost[k])
            )
        )
        diff.shapes += [("gained", zid, gained_shapes[k]), ("lost", zid, lost_shapes[k])]
    for j, zid in enumerate(common):
        before, after = _name(old_names, int(o[j])), _name(new_names, int(n[j]))
        if old_names is not None and new_names is not None and before != after:
            diff.renamed.append(RenamedZone(zid, before, after))
    renamed = {z.id for z in diff.renamed}
    diff.unchanged = sum(1 for j, zid in enumerate(common) if not moved[j] and zid not in renamed)
    return diff
