"""The whole city as one immutable snapshot: layers, zone indexes, facility sets, categories.

A :class:`CitySnapshot` holds everything one profile version needs to answer, with per-row
tables that the encoders read; :func:`build_snapshot` builds it from a profile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import shapely

from geo_router.city.facilities import FacilitySet, load_facilities
from geo_router.city.layers import ZoneLayer, load_layer
from geo_router.city.models import (
    STATUS_CODES,
    Candidate,
    CategoryRoute,
    Responder,
    Warning,
    ZoneMatch,
)
from geo_router.city.nearest import StaticNearestIndex
from geo_router.city.profile import CityProfile
from geo_router.city.zone_index import ZoneIndex
from geo_router.errors import ProfileError

__all__ = ["CitySnapshot", "FacilityTable", "LayerTable", "PointHits", "build_snapshot"]


@dataclass(frozen=True, slots=True)
class LayerTable:
    """Python lists of one layer for building answers without numpy/pandas per item."""

    name: str
    version: str
    ids: list[str]
    names: list[str | None]

    def match(self, primary: int, status: int, cands: Iterable[tuple[int, float]]) -> ZoneMatch:
        """The layer's answer from row numbers: the primary zone's row (-1 for none), the
        status index into ``STATUS_CODES`` and ``(zone row, metres)`` candidates."""
        ids, names = self.ids, self.names
        return ZoneMatch(
            self.name,
            self.version,
            STATUS_CODES[status],
            ids[primary] if primary >= 0 else None,
            names[primary] if primary >= 0 else None,
            # a covering zone is 0.0 m away, never -0.0
            [Candidate(ids[z], names[z], d if d else 0.0) for z, d in cands],
        )


@dataclass(frozen=True, slots=True)
class FacilityTable:
    """Python lists of one facility set for building Responder objects quickly."""

    kind: str
    ids: list[str]
    names: list[str | None]
    lon: list[float]
    lat: list[float]

    def responder(self, row: int, metres: float, bearing: float) -> Responder:
        """The facility of ``row``, ranked at ``metres`` and ``bearing`` from a point."""
        return Responder(
            self.kind,
            self.ids[row],
            self.names[row],
            metres,
            bearing,
            self.lon[row],
            self.lat[row],
        )


@dataclass(frozen=True, slots=True)
class _PointLayer:
    """What the single-point path needs of one layer, resolved once per snapshot."""

    name: str
    index: ZoneIndex
    lookup_one: Any  #: ``index.lookup_one`` when the index has it, else None (array lookup)


@dataclass(frozen=True, slots=True)
class _PointFacilities:
    """What the single-point path needs of one facility type, resolved once per snapshot."""

    kind: str
    nearest_one: Any  #: bound ``StaticNearestIndex.nearest_one``


class PointHits(NamedTuple):
    """One routed point as row numbers into its snapshot's tables (see Router.route_hits)."""

    snapshot: CitySnapshot
    lon: float
    lat: float
    #: per layer, in the snapshot's layer order: (layer, primary row or -1, status index into
    #: STATUS_CODES, [(zone row, metres), ...] primary first)
    zones: list[tuple[str, int, int, list[tuple[int, float]]]]
    #: per facility type ranked: (type, [(facility row, metres, bearing), ...] nearest first)
    responders: list[tuple[str, list[tuple[int, float, float]]]]
    category: CategoryRoute | None
    warnings: list[Warning]


@dataclass(frozen=True, eq=False)
class CitySnapshot:
    """Everything needed to route in one city at one version; never changed after build.

    Attributes
    ----------
    profile
        The city profile it was built from.
    layers, zone_indexes
        Per layer name: the zones and their point index.
    facilities, nearest
        Per facility type: the facilities and their exact nearest index.
    categories
        Per category code: what it routes to.
    versions
        Layer name or facility type -> 12-hex version of its source file.
    parents
        Per child layer: child zone id -> parent zone id.
    loaded_at
        When the snapshot was built (UTC).
    tolerance_m
        Boundary tolerance of the zone indexes.
    coverage_bounds
        (min lon, min lat, max lon, max lat) over every layer.
    """

    profile: CityProfile
    layers: dict[str, ZoneLayer]
    zone_indexes: dict[str, ZoneIndex]
    facilities: dict[str, FacilitySet]
    nearest: dict[str, StaticNearestIndex]
    categories: dict[str, CategoryRoute]
    versions: dict[str, str]
    parents: dict[str, dict[str, str]]
    loaded_at: datetime
    tolerance_m: float
    coverage_bounds: tuple[float, float, float, float]
    _layer_tables: dict[str, LayerTable] = field(repr=False, default_factory=dict)
    _facility_tables: dict[str, FacilityTable] = field(repr=False, default_factory=dict)
    _point_layers: tuple[_PointLayer, ...] = field(repr=False, default=())
    _point_facilities: dict[str, _PointFacilities] = field(repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        # Built here so that a snapshot assembled by hand (tests) is as fast as a built one.
        if not self._layer_tables:
            object.__setattr__(
                self,
                "_layer_tables",
                {name: _layer_table(name, layer) for name, layer in self.layers.items()},
            )
        if not self._facility_tables:
            object.__setattr__(
                self,
                "_facility_tables",
                {kind: _facility_table(kind, fs) for kind, fs in self.facilities.items()},
            )
        if not self._point_layers:
            object.__setattr__(
                self,
                "_point_layers",
                tuple(_point_layer(name, index) for name, index in self.zone_indexes.items()),
            )
        if not self._point_facilities:
            object.__setattr__(
                self,
                "_point_facilities",
                {
                    kind: _PointFacilities(kind, index.nearest_one)
                    for kind, index in self.nearest.items()
                },
            )

    def zone_labels(self, layer: str) -> tuple[str, list[str], list[str | None]]:
        """``(version, ids, names)`` of a layer's zones by row, as answers show them."""
        table = self._layer_tables[layer]
        return table.version, table.ids, table.names

    def facility_labels(
        self, kind: str
    ) -> tuple[list[str], list[str | None], list[float], list[float]]:
        """``(ids, names, lons, lats)`` of a facility type by row, as answers show them."""
        table = self._facility_tables[kind]
        return table.ids, table.names, table.lon, table.lat

    def layer_table(self, layer: str) -> LayerTable:
        """A layer's zones by row, as answers show them (see :meth:`LayerTable.match`)."""
        return self._layer_tables[layer]

    def facility_table(self, kind: str) -> FacilityTable:
        """A facility type by row, as answers show it (see :meth:`FacilityTable.responder`)."""
        return self._facility_tables[kind]

    def parent_of(self, layer: str, zone_id: str) -> str | None:
        """The parent zone id of ``zone_id`` in a child layer (None when not nested)."""
        return self.parents.get(layer, {}).get(zone_id)


def _text_list(values: np.ndarray | None, n: int) -> list[str | None]:
    """Names as a list of str/None (None everywhere when the layer has no name field)."""
    if values is None:
        return [None] * n
    return [
        None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        for v in values.tolist()
    ]


def _layer_table(name: str, layer: ZoneLayer) -> LayerTable:
    ids = [str(v) for v in layer.ids.tolist()]
    return LayerTable(name, layer.version, ids, _text_list(layer.names, len(ids)))


def _facility_table(kind: str, fs: FacilitySet) -> FacilityTable:
    ids = [str(v) for v in fs.ids.tolist()]
    names = _text_list(fs.names, len(ids))
    return FacilityTable(kind, ids, names, fs.lon.tolist(), fs.lat.tolist())


def _point_layer(name: str, index: ZoneIndex) -> _PointLayer:
    # The scalar fast path ``lookup_one(lon, lat) -> (primary, status, [(zone, metres)])`` is
    # used when the zone index offers it; otherwise _lookup_array gives the same answer.
    one = getattr(index, "lookup_one", None)
    return _PointLayer(name, index, one)


def _parent_ids(child: ZoneLayer, parent: ZoneLayer) -> dict[str, str]:
    """Map each child zone to the one parent zone holding its representative point.

    Raises
    ------
    ProfileError
        When a child zone's representative point lies in no parent zone or in several.
    """
    points = shapely.point_on_surface(child.geometries)
    tree = shapely.STRtree(parent.geometries)
    child_row, parent_row = tree.query(points, predicate="intersects")
    counts = np.bincount(child_row, minlength=len(child.ids))
    bad = np.flatnonzero(counts != 1)
    if bad.size:
        row = int(bad[0])
        found = parent.ids[parent_row[child_row == row]].tolist()
        where = (
            f"in {len(found)} '{parent.name}' zones ({', '.join(map(str, found))})"
            if found
            else f"in no '{parent.name}' zone"
        )
        raise ProfileError(
            f"layer '{child.name}' does not nest in '{parent.name}': zone "
            f"{child.ids[row]!r} lies {where}"
            + (f" (and {bad.size - 1} more zones)" if bad.size > 1 else ""),
            detail={
                "layer": child.name,
                "parent": parent.name,
                "zones": [str(child.ids[i]) for i in bad[:100]],
            },
        )
    order = np.argsort(child_row, kind="stable")
    return dict(
        zip(
            child.ids[child_row[order]].tolist(),
            parent.ids[parent_row[order]].tolist(),
            strict=True,
        )
    )


def build_snapshot(profile: CityProfile, *, tolerance_m: float = 10.0) -> CitySnapshot:
    """Load every layer and facility set of a profile and index them.

    Parameters
    ----------
    profile
        A loaded city profile.
    tolerance_m
        Boundary tolerance of the zone indexes, metres.

    Returns
    -------
    CitySnapshot
        Ready to route; layers with a ``parent`` are checked to nest in it.

    Raises
    ------
    ProfileError
        A file that cannot be loaded, or a child layer that does not nest in its parent.
    """
    layers = {spec.name: load_layer(spec) for spec in profile.layers}
    zone_indexes = {name: ZoneIndex(layer, tolerance_m) for name, layer in layers.items()}
    parents = {
        spec.name: _parent_ids(layers[spec.name], layers[spec.parent])
        for spec in profile.layers
        if spec.parent is not None
    }
    facilities = {spec.type: load_facilities(spec) for spec in profile.facilities}
    nearest = {kind: StaticNearestIndex(fs) for kind, fs in facilities.items()}
    categories = {
        c.code: CategoryRoute(c.code, c.name, c.agency, list(c.responders), c.emergency)
        for c in profile.categories
    }
    versions = {name: layer.version for name, layer in layers.items()}
    versions.update({kind: fs.version for kind, fs in facilities.items()})
    bounds = np.array([shapely.total_bounds(layer.geometries) for layer in layers.values()])
    coverage = (
        float(np.nanmin(bounds[:, 0])),
        float(np.nanmin(bounds[:, 1])),
        float(np.nanmax(bounds[:, 2])),
        float(np.nanmax(bounds[:, 3])),
    )
    return CitySnapshot(
        profile=profile,
        layers=layers,
        zone_indexes=zone_indexes,
        facilities=facilities,
        nearest=nearest,
        categories=categories,
        versions=versions,
        parents=parents,
        loaded_at=datetime.now(UTC),
        tolerance_m=float(tolerance_m),
        coverage_bounds=coverage,
    )
