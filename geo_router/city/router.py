"""The Router: answers from one :class:`~geo_router.city.snapshot.CitySnapshot`, swapped atomically.

A :class:`Router` answers from one snapshot per request: each call reads ``self._snapshot``
once at entry and uses that object throughout, so :meth:`Router.swap` in another thread can
never make one answer mix two versions.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geo_router.city import coords
from geo_router.city.helper_threads import CPUS, helper_thread
from geo_router.city.models import (
    STATUS_CODES,
    AreaRouteResult,
    BulkRoute,
    Candidate,
    CategoryRoute,
    LayerLookup,
    NearestLookup,
    Responder,
    RouteResult,
    Warning,
    ZoneMatch,
    ZoneShare,
    ZoneStatus,
)
from geo_router.city.profile import load_profile
from geo_router.city.snapshot import (
    CitySnapshot,
    PointHits,
    build_snapshot,
)
from geo_router.city.zone_index import ZoneIndex
from geo_router.errors import (
    InvalidCoordinatesError,
    InvalidGeometryError,
    UnknownCategoryError,
)

__all__ = ["Router", "SnapshotBulkRoute", "circle"]

_INVALID = STATUS_CODES.index(ZoneStatus.INVALID)
_OUTSIDE = STATUS_CODES.index(ZoneStatus.OUTSIDE_COVERAGE)


@dataclass(slots=True)
class SnapshotBulkRoute(BulkRoute):
    """A :class:`BulkRoute` that remembers its inputs and the snapshot that answered it.

    ``lon``/``lat`` are the inputs as floats (NaN where not numbers); ``_snapshot`` lets
    :meth:`Router.result_at` name ids from the same version even after a swap (orjson skips
    underscore fields, so serializing stays cheap).
    """

    lon: np.ndarray = field(default_factory=lambda: np.empty(0))
    lat: np.ndarray = field(default_factory=lambda: np.empty(0))
    k: int = 1
    _snapshot: CitySnapshot | None = field(default=None, repr=False)


def circle(lon: float, lat: float, radius_m: float, *, quad_segs: int = 16) -> shapely.Polygon:
    """A circle of ``radius_m`` metres around (lon, lat) as an EPSG:4326 polygon.

    The buffer is drawn in the point's local UTM zone, so the radius is metric.

    Raises
    ------
    InvalidCoordinatesError
        Unusable coordinates.
    InvalidGeometryError
        A radius that is not a positive finite number.
    """
    lon, lat = coords.require_lonlat(lon, lat)
    if not isinstance(radius_m, int | float) or not math.isfinite(radius_m) or radius_m <= 0:
        raise InvalidGeometryError(
            f"radius_m must be a positive number of metres, got {radius_m!r}",
            detail={"field": "radius_m"},
        )
    utm = coords.local_utm(lon, lat)
    forward = Transformer.from_crs("EPSG:4326", utm, always_xy=True)
    back = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    x, y = forward.transform(lon, lat)
    disk = shapely.Point(x, y).buffer(radius_m, quad_segs=quad_segs)
    return shapely.transform(disk, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))


def _checked_points(
    lon: Any, lat: Any
) -> tuple[np.ndarray, list[str | None], np.ndarray, np.ndarray]:
    """(valid, reasons, lon, lat as float arrays) of bulk input (:func:`coords.check_lonlat`)."""
    valid, reasons = coords.check_lonlat(lon, lat)
    return valid, reasons, coords.as_float_array(lon), coords.as_float_array(lat)


def _nearest_many(
    snap: CitySnapshot, kinds: list[str], lon: np.ndarray, lat: np.ndarray, k: int
) -> dict[str, NearestLookup]:
    """Bulk nearest of several facility types (valid points only)."""
    return {kind: snap.nearest[kind].nearest(lon, lat, k) for kind in kinds}


#: Bulk routing of at least this many points ranks facilities on a helper thread meanwhile.
PARALLEL_MIN_POINTS = 2048
_CPUS = CPUS  # a module global, so tests can pretend to have two cores


def _scatter_layer(sub: LayerLookup, rows: np.ndarray, n: int) -> LayerLookup:
    """Spread a lookup of the valid rows over all n rows; the others become INVALID."""
    primary = np.full(n, -1, dtype=np.int32)
    primary[rows] = sub.primary
    status = np.full(n, _INVALID, dtype=np.int8)
    status[rows] = sub.status
    counts = np.zeros(n, dtype=np.int64)
    counts[rows] = np.diff(sub.cand_ptr)
    cand_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=cand_ptr[1:])
    return LayerLookup(primary, status, cand_ptr, sub.cand_zone, sub.cand_dist_m)


def _scatter_nearest(sub: NearestLookup, rows: np.ndarray, n: int, k: int) -> NearestLookup:
    """Spread a nearest lookup of the valid rows over all n rows; the others get -1 / nan."""
    out = NearestLookup(
        index=np.full((n, k), -1, dtype=np.int32),
        distance_m=np.full((n, k), np.nan),
        bearing_deg=np.full((n, k), np.nan),
    )
    out.index[rows], out.distance_m[rows], out.bearing_deg[rows] = (
        sub.index,
        sub.distance_m,
        sub.bearing_deg,
    )
    return out


class Router:
    """Routes locations against one :class:`CitySnapshot` that can be swapped atomically.

    Parameters
    ----------
    snapshot
        The city to answer from.
    """

    def __init__(self, snapshot: CitySnapshot) -> None:
        self._snapshot = snapshot
        self._swap_lock = threading.Lock()

    @classmethod
    def from_profile(cls, path: str | Path, *, tolerance_m: float = 10.0) -> Router:
        """Load a profile file, build its snapshot and return a Router over it."""
        return cls(build_snapshot(load_profile(path), tolerance_m=tolerance_m))

    @property
    def snapshot(self) -> CitySnapshot:
        """The snapshot answering requests right now."""
        return self._snapshot

    def swap(self, new_snapshot: CitySnapshot) -> CitySnapshot:
        """Answer every later request from ``new_snapshot``; returns the previous snapshot.

        Requests already running finish on the snapshot they started with.
        """
        if not isinstance(new_snapshot, CitySnapshot):
            raise TypeError(f"swap needs a CitySnapshot, got {type(new_snapshot).__name__}")
        with self._swap_lock:
            old, self._snapshot = self._snapshot, new_snapshot
        return old

    def category(self, code: str, *, snapshot: CitySnapshot | None = None) -> CategoryRoute:
        """What category ``code`` routes to; UnknownCategoryError listing the known codes.

        ``snapshot`` answers from that snapshot instead of the current one (to keep one
        version across a request that also calls :meth:`route_many` with it).
        """
        return _category(snapshot if snapshot is not None else self._snapshot, code)

    # -- one point ----------------------------------------------------------------------

    def route(
        self, lon: float, lat: float, *, category: str | None = None, k: int = 3
    ) -> RouteResult:
        """Route one location: zones of every layer, nearest responders, warnings.

        Parameters
        ----------
        lon, lat
            EPSG:4326 coordinates (GeoJSON order).
        category
            A category code: ranks only its responder types and attaches its agency.
            Without one, every facility type is ranked.
        k
            Responders per facility type.

        Raises
        ------
        InvalidCoordinatesError
            Unusable coordinates (``detail['possible_axis_swap']`` when lat, lon would work).
        UnknownCategoryError
            A category the profile does not define.
        """
        return _route_result(self.route_hits(lon, lat, category=category, k=k))

    def route_hits(
        self, lon: float, lat: float, *, category: str | None = None, k: int = 3
    ) -> PointHits:
        """:meth:`route`'s answer as row numbers into the snapshot's tables, no dataclasses.

        For encoders that turn one answer straight into bytes (the HTTP hot path): the
        same zones, candidates, responders and warnings, the same errors.
        """
        snap = self._snapshot
        try:
            lon, lat = coords.require_lonlat(lon, lat)
        except InvalidCoordinatesError as exc:
            raise _with_swap_hint(snap, exc, lon, lat) from None
        cat = _category(snap, category) if category is not None else None
        return _route_point(snap, lon, lat, cat, _check_k(k))

    # -- many points --------------------------------------------------------------------

    def route_many(
        self,
        lon: Any,
        lat: Any,
        *,
        k: int = 1,
        responder_types: list[str] | None = None,
        snapshot: CitySnapshot | None = None,
        on_zones: Callable[[dict[str, LayerLookup], np.ndarray], None] | None = None,
    ) -> SnapshotBulkRoute:
        """Route many points at once, as arrays.

        Parameters
        ----------
        lon, lat
            Equal-length sequences; unusable rows are reported, not raised.
        k
            Responders per facility type.
        responder_types
            Facility types to rank (default: all).
        snapshot
            Route against this snapshot instead of the current one (e.g. to pin one version
            across the chunks of a file).
        on_zones
            Called on this thread with the zone lookups (every row, in layer order) and the
            validity mask as soon as they are known, while a helper thread may still rank
            facilities: work that needs only the zones (encoding them) overlaps the ranking.

        Returns
        -------
        SnapshotBulkRoute
            A BulkRoute; invalid rows have status INVALID in every layer and -1/nan
            responders.
        """
        snap = snapshot if snapshot is not None else self._snapshot
        k = _check_k(k)
        kinds = _responder_types(snap, responder_types)
        valid, reasons, lon_f, lat_f = _checked_points(lon, lat)
        n = valid.size
        rows = np.flatnonzero(valid)
        every = rows.size == n
        vlon, vlat = (lon_f, lat_f) if every else (lon_f[rows], lat_f[rows])
        # The geodesics of the nearest step run in C without the GIL: a helper thread ranks
        # about half of the facility types while this one looks up the zones.
        parallel = rows.size >= PARALLEL_MIN_POINTS and len(kinds) > 1 and _CPUS > 1
        helper_kinds = kinds[: (len(kinds) + 1) // 2] if parallel else []
        pending = (
            helper_thread("bulk").submit(_nearest_many, snap, helper_kinds, vlon, vlat, k)
            if helper_kinds
            else None
        )
        try:
            layers: dict[str, LayerLookup] = {}
            for name, index in snap.zone_indexes.items():
                sub = index.lookup(vlon, vlat)
                layers[name] = sub if every else _scatter_layer(sub, rows, n)
            own = _nearest_many(snap, kinds[len(helper_kinds) :], vlon, vlat, k)
            if on_zones is not None:
                on_zones(layers, valid)
        finally:
            found = pending.result() if pending is not None else {}
        nearest: dict[str, NearestLookup] = {}
        for kind in kinds:
            sub_n = found[kind] if kind in found else own[kind]
            nearest[kind] = sub_n if every else _scatter_nearest(sub_n, rows, n, k)
        outside = np.ones(n, dtype=bool)
        for lookup in layers.values():
            outside &= lookup.status >= _OUTSIDE
        return SnapshotBulkRoute(
            n=n,
            valid=valid,
            reasons=reasons,
            layers=layers,
            nearest=nearest,
            axis_swap=_axis_swap_mask(snap, lon_f, lat_f, outside),
            lon=lon_f,
            lat=lat_f,
            k=k,
            _snapshot=snap,
        )

    def result_at(
        self, bulk: BulkRoute, i: int, k: int | None = None, *, category: str | None = None
    ) -> RouteResult:
        """Row ``i`` of a bulk answer as a :class:`RouteResult` (at most ``k`` responders)."""
        return self.results(bulk, category=category, rows=[i], k=k)[0]

    def results(
        self,
        bulk: BulkRoute,
        category: str | None = None,
        *,
        rows: list[int] | None = None,
        k: int | None = None,
    ) -> list[RouteResult]:
        """Every row (or ``rows``) of a bulk answer as RouteResults, converted in bulk.

        With a category, only its responder types are listed and it is attached.
        """
        snap = getattr(bulk, "_snapshot", None) or self._snapshot
        cat = _category(snap, category) if category is not None else None
        kinds = (
            list(bulk.nearest) if cat is None else [t for t in cat.responders if t in bulk.nearest]
        )
        picked = list(range(bulk.n)) if rows is None else [int(r) for r in rows]
        for r in picked:
            if not -bulk.n <= r < bulk.n:
                raise IndexError(f"row {r} out of range for {bulk.n} routed points")
        picked = [r % bulk.n for r in picked] if bulk.n else picked
        lon = getattr(bulk, "lon", None)
        lat = getattr(bulk, "lat", None)
        lon_l = lon.tolist() if lon is not None and len(lon) == bulk.n else [math.nan] * bulk.n
        lat_l = lat.tolist() if lat is not None and len(lat) == bulk.n else [math.nan] * bulk.n
        layer_rows = {name: self._layer_rows(lk, picked) for name, lk in bulk.layers.items()}
        near_rows = {kind: self._near_rows(bulk.nearest[kind], picked, k) for kind in kinds}
        swap = bulk.axis_swap[picked].tolist() if len(picked) else []
        tables = {name: snap.layer_table(name) for name in layer_rows}
        facilities = {kind: snap.facility_table(kind) for kind in near_rows}
        out: list[RouteResult] = []
        for pos, r in enumerate(picked):
            zones = {name: tables[name].match(*lr[pos]) for name, lr in layer_rows.items()}
            responders = {
                kind: [
                    facilities[kind].responder(j, d, b)
                    for j, d, b in zip(*nr[pos], strict=True)
                    if j >= 0
                ]
                for kind, nr in near_rows.items()
            }
            warnings = []
            if all(z.status == ZoneStatus.OUTSIDE_COVERAGE for z in zones.values()):
                warnings.append(Warning.OUTSIDE_COVERAGE)
            if swap[pos]:
                warnings.append(Warning.POSSIBLE_AXIS_SWAP)
            out.append(RouteResult(lon_l[r], lat_l[r], zones, responders, cat, warnings))
        return out

    @staticmethod
    def _layer_rows(
        lk: LayerLookup, picked: list[int]
    ) -> list[tuple[int, int, list[tuple[int, float]]]]:
        """(primary, status, [(candidate row, metres)]) per picked row."""
        status = lk.status[picked].tolist()
        primary = lk.primary[picked].tolist()
        ptr = lk.cand_ptr.tolist()
        zone = lk.cand_zone.tolist()
        dist = lk.cand_dist_m.tolist()
        pairs = list(zip(zone, dist, strict=True))
        return [(primary[p], status[p], pairs[ptr[r] : ptr[r + 1]]) for p, r in enumerate(picked)]

    @staticmethod
    def _near_rows(
        nl: NearestLookup, picked: list[int], k: int | None
    ) -> list[tuple[list[int], list[float], list[float]]]:
        """(rows, metres, bearings) per picked row, at most k columns."""
        cols = slice(None) if k is None else slice(0, int(k))
        index = nl.index[picked, cols].tolist()
        dist = nl.distance_m[picked, cols].tolist()
        bearing = nl.bearing_deg[picked, cols].tolist()
        return list(zip(index, dist, bearing, strict=True))

    # -- uncertain locations ------------------------------------------------------------

    def route_area(
        self, geometry: BaseGeometry, *, category: str | None = None, k: int = 3
    ) -> AreaRouteResult:
        """Route an uncertain location (a polygon in EPSG:4326, e.g. from :func:`circle`).

        Each layer's primary zone is the one holding the largest share of the area (ties:
        smallest id); responders are ranked from the polygon's representative point.

        Raises
        ------
        InvalidGeometryError
            Not a non-empty valid (multi)polygon within lon/lat range.
        """
        snap = self._snapshot
        cat = _category(snap, category) if category is not None else None
        _check_area(geometry)
        point = geometry.representative_point()
        base = _route_result(_route_point(snap, point.x, point.y, cat, _check_k(k)))
        overlaps: dict[str, list[ZoneShare]] = {}
        zones: dict[str, ZoneMatch] = {}
        for name, index in snap.zone_indexes.items():
            # shares equal to 1e-9 are ties (two halves of a circle differ in the last bits)
            shares = sorted(index.overlaps(geometry), key=lambda s: (-round(s.share, 9), s.zone_id))
            overlaps[name] = shares
            zones[name] = _area_match(base.zones[name], shares)
        warnings: list[Warning] = [w for w in base.warnings if w != Warning.OUTSIDE_COVERAGE]
        if all(not shares for shares in overlaps.values()):
            warnings.insert(0, Warning.OUTSIDE_COVERAGE)
        route = RouteResult(base.lon, base.lat, zones, base.responders, cat, warnings)
        return AreaRouteResult(route=route, overlaps=overlaps)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _category(snap: CitySnapshot, code: str) -> CategoryRoute:
    """The category of a snapshot, or UnknownCategoryError listing the known codes."""
    found = snap.categories.get(code)
    if found is None:
        known = ", ".join(sorted(snap.categories)) or "none"
        raise UnknownCategoryError(
            f"unknown category {code!r} (categories: {known})",
            detail={"category": code, "known": sorted(snap.categories)},
        )
    return found


def _responder_types(snap: CitySnapshot, requested: list[str] | None) -> list[str]:
    """Facility types to rank: all, or the requested ones (each must exist)."""
    if requested is None:
        return list(snap.nearest)
    unknown = [t for t in requested if t not in snap.nearest]
    if unknown:
        raise UnknownCategoryError(
            f"unknown facility type {unknown[0]!r} (facilities: {', '.join(snap.nearest)})",
            detail={"facility_type": unknown[0], "known": list(snap.nearest)},
        )
    return list(dict.fromkeys(requested))


def _lookup_array(
    index: ZoneIndex, lon: float, lat: float
) -> tuple[int, int, list[tuple[int, float]]]:
    """``ZoneIndex.lookup_one``'s answer through the array lookup (indexes without it)."""
    lk = index.lookup(np.array((lon,)), np.array((lat,)))
    cands = list(zip(lk.cand_zone.tolist(), lk.cand_dist_m.tolist(), strict=True))
    return int(lk.primary[0]), int(lk.status[0]), cands


def _route_point(
    snap: CitySnapshot, lon: float, lat: float, cat: CategoryRoute | None, k: int
) -> PointHits:
    """The single-point route against one snapshot (coordinates already checked).

    Lean on purpose (it is the GET hot path): per-snapshot plans of plain lists and scalar
    lookups where the zone index offers them; rows and numbers only, no dataclasses.
    """
    zones: list[tuple[str, int, int, list[tuple[int, float]]]] = []
    outside_all = True
    for layer in snap._point_layers:
        one = layer.lookup_one
        primary, status, cands = (
            one(lon, lat) if one is not None else _lookup_array(layer.index, lon, lat)
        )
        zones.append((layer.name, primary, status, cands))
        if status < _OUTSIDE:
            outside_all = False
    plans = snap._point_facilities
    responders = [
        (kind, plans[kind].nearest_one(lon, lat, k))
        for kind in (cat.responders if cat is not None else plans)
    ]
    warnings: list[Warning] = []
    if outside_all:
        warnings.append(Warning.OUTSIDE_COVERAGE)
        if _swapped_covered(snap, lon, lat):
            warnings.append(Warning.POSSIBLE_AXIS_SWAP)
    return PointHits(snap, lon, lat, zones, responders, cat, warnings)


def _route_result(hits: PointHits) -> RouteResult:
    """A :class:`PointHits` as the RouteResult dataclasses."""
    snap = hits.snapshot
    zones = {name: snap.layer_table(name).match(p, s, c) for name, p, s, c in hits.zones}
    responders: dict[str, list[Responder]] = {}
    for kind, ranked in hits.responders:
        table = snap.facility_table(kind)
        responders[kind] = [table.responder(j, d, b) for j, d, b in ranked]
    return RouteResult(hits.lon, hits.lat, zones, responders, hits.category, hits.warnings)


def _swapped_covered(snap: CitySnapshot, lon: Any, lat: Any) -> bool:
    """Whether (lat, lon) read as (lon, lat) is a valid point some layer covers."""
    try:
        lon_a, lat_a = np.array((lon,), dtype=np.float64), np.array((lat,), dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return bool(_axis_swap_mask(snap, lon_a, lat_a, np.ones(1, dtype=bool))[0])


def _with_swap_hint(
    snap: CitySnapshot, exc: InvalidCoordinatesError, lon: Any, lat: Any
) -> InvalidCoordinatesError:
    """The same error, marked ``possible_axis_swap`` when the swapped pair is in the city."""
    if not _swapped_covered(snap, lon, lat):
        return exc
    message = exc.message
    if "lat, lon" not in message:
        message += " (swapped, the point lies in the city: is the order lat, lon?)"
    return InvalidCoordinatesError(message, detail={**exc.detail, "possible_axis_swap": True})


def _axis_swap_mask(
    snap: CitySnapshot, lon: np.ndarray, lat: np.ndarray, outside: np.ndarray
) -> np.ndarray:
    """Rows outside every layer (or unusable) whose swapped (lat, lon) some layer covers."""
    rows = np.flatnonzero(outside & coords.swap_plausible(lon, lat))
    mask = np.zeros(lon.size, dtype=bool)
    if rows.size:
        covered = np.zeros(rows.size, dtype=bool)
        for index in snap.zone_indexes.values():
            covered |= np.asarray(index.covers_any(lat[rows], lon[rows]), dtype=bool)
        mask[rows] = covered
    return mask


def _check_area(geometry: Any) -> None:
    """An uncertain location must be a valid, non-empty (multi)polygon in lon/lat range."""
    if not isinstance(geometry, shapely.Polygon | shapely.MultiPolygon):
        kind = type(geometry).__name__
        raise InvalidGeometryError(
            f"an area must be a Polygon or MultiPolygon, got {kind}", detail={"type": kind}
        )
    if geometry.is_empty:
        raise InvalidGeometryError("the area is empty")
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        raise InvalidGeometryError(f"the area is not valid: {reason}", detail={"reason": reason})
    bounds = geometry.bounds
    problem = coords.box_problem(*bounds)
    if problem is not None:
        raise InvalidGeometryError(
            f"the area lies outside lon/lat range (is it EPSG:4326 in lon, lat order?): {problem}",
            detail={"bounds": list(bounds)},
        )


def _area_match(point_match: ZoneMatch, shares: list[ZoneShare]) -> ZoneMatch:
    """A layer's answer for an area: the largest overlap is primary, every overlap a candidate.

    Status is INSIDE when one zone holds the whole area, NEAR_BOUNDARY when several share it,
    OUTSIDE_COVERAGE when none does.
    """
    if not shares:
        return ZoneMatch(
            point_match.layer, point_match.version, ZoneStatus.OUTSIDE_COVERAGE, None, None, []
        )
    top = shares[0]
    status = ZoneStatus.INSIDE if len(shares) == 1 else ZoneStatus.NEAR_BOUNDARY
    candidates = [Candidate(s.zone_id, s.name, 0.0) for s in shares]
    return ZoneMatch(
        point_match.layer, point_match.version, status, top.zone_id, top.name, candidates
    )
