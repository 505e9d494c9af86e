"""Point -> zone lookup for one layer, in bulk: a grid of interior cells, then exact geometry.

Semantics
---------
* A point belongs to a zone when the zone **covers** it (its boundary counts), so a point on an
  edge or a vertex shared by zones is never in no zone.
* The **primary** zone of a point is chosen deterministically among the zones that cover it: a
  zone whose interior contains the point wins over zones that only touch it with their
  boundary; among equals, the smallest zone id in string order wins.
* **Candidates** are every zone covering the point (distance 0) plus every zone whose boundary
  lies within ``tolerance_m`` metres of it, with that distance. Distances are measured in the
  local UTM projection of the layer (:func:`geo_router.city.coords.local_utm`) and rounded to the
  micrometre. Candidates come primary first, then by distance, then by zone id (string order).
* **Status** (index into :data:`geo_router.city.models.STATUS_CODES`): ``outside_coverage``
  (2) when no zone covers the point (primary -1; candidates within the tolerance are still listed),
  ``near_boundary`` (1) when a zone covers it and there is more than one candidate, else
  ``inside`` (0). The index never answers ``invalid``: callers drop bad coordinates first;
  non-finite coordinates that slip through are simply outside coverage.

How it is fast
--------------
At build time a regular grid is laid over the layer (about ``grid_cells`` cells along its
longer side, square in metres). For each zone, the cells within the tolerance (converted
conservatively to degrees) of its densified boundary are marked *near*; the other cells of
its bounding window form connected regions that are each wholly inside or wholly outside the
zone, decided by one point-in-polygon test per region. A cell that is near no boundary and
inside exactly one zone answers ``inside`` by array indexing; a cell near no boundary and
inside no zone answers ``outside_coverage``; only points in the remaining *mixed* cells are
tested exactly: prepared ``intersects_xy`` / ``contains_xy`` against the cell's zone list,
and numpy point-to-segment distances, in UTM metres, to the boundary segments binned in the
cell at build time (both lists are CSR arrays). Without a grid (``grid_cells=0``) the same
answers come from an STRtree bounding-box query and an STRtree ``dwithin`` query.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from scipy import ndimage

from geo_router.city.coords import get_transformer, local_utm
from geo_router.city.layers import ZoneLayer
from geo_router.city.models import LayerLookup, ZoneShare
from geo_router.city.validation import to_utm
from geo_router.errors import InvalidGeometryError

__all__ = ["DEFAULT_GRID_CELLS", "ZoneIndex"]

#: Cells along the longer side of the grid (the shorter side gets proportionally fewer).
DEFAULT_GRID_CELLS = 1024

_INSIDE, _NEAR, _OUTSIDE = 0, 1, 2
# Degrees of latitude/longitude are never shorter than these (WGS84 meridian at the equator,
# equatorial parallel); with _SAFETY they bound a UTM distance from above in degrees.
_M_PER_DEG_LAT_MIN = 110_574.0
_M_PER_DEG_LON_EQ = 111_319.0
_SAFETY = 1.05
_EPS_DEG = 1e-9
_MIN_CELL_M = 1.0


@dataclass(frozen=True, slots=True)
class _Grid:
    """Cell classes and, for mixed cells, their zone lists (CSR)."""

    x0: float
    y0: float
    cw: float  #: cell width, degrees of longitude
    ch: float  #: cell height, degrees of latitude
    nx: int
    ny: int
    code: np.ndarray  #: int32 (ny * nx,): zone row >= 0, -1 outside, <= -2 mixed (-2 - mixed id)
    mixed_ptr: np.ndarray  #: int64 (n_mixed + 1,)
    mixed_zone: np.ndarray  #: int32: zones near or over each mixed cell
    mixed_full: np.ndarray  #: bool: the zone covers the whole cell, farther than the tolerance

    def cells(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Flat cell index of each point, -1 when off the grid or not finite."""
        with np.errstate(invalid="ignore"):
            fx = np.floor((lon - self.x0) / self.cw)
            fy = np.floor((lat - self.y0) / self.ch)
            on = (fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny)
        out = np.full(lon.shape, -1, dtype=np.int64)
        out[on] = fy[on].astype(np.int64) * self.nx + fx[on].astype(np.int64)
        return out


def _degree_tolerance(tolerance_m: float, max_abs_lat: float) -> tuple[float, float]:
    """Degrees of lon/lat that surely hold ``tolerance_m`` UTM metres around any grid point."""
    cos_lat = max(math.cos(math.radians(min(max_abs_lat, 89.0))), 1e-6)
    dy = tolerance_m * _SAFETY / _M_PER_DEG_LAT_MIN
    dx = tolerance_m * _SAFETY / (_M_PER_DEG_LON_EQ * cos_lat)
    return dx, dy


def _grid_frame(
    bounds: np.ndarray, tolerance_m: float, cells: int
) -> tuple[float, float, float, float, int, int, float, float, float]:
    """Origin, cell size, shape, densify step and marking reach (dx, dy) of the grid."""
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    max_abs_lat = max(abs(miny), abs(maxy))
    cos_mid = max(math.cos(math.radians((miny + maxy) / 2.0)), 1e-6)
    span = max((maxx - minx) * cos_mid, maxy - miny, 1e-6)
    # cells much smaller than the tolerance only multiply the marking work, not the speed
    min_cell_deg = max(0.5 * tolerance_m, _MIN_CELL_M) / _M_PER_DEG_LAT_MIN
    ch = max(span / cells, min_cell_deg)
    cw = ch / cos_mid  # square cells in metres
    step = 0.25 * min(cw, ch)  # boundary densify step: every boundary point is near a vertex
    tx, ty = _degree_tolerance(tolerance_m, max_abs_lat + ch)
    dx, dy = tx + step + _EPS_DEG, ty + step + _EPS_DEG
    x0, y0 = minx - dx - cw, miny - dy - ch
    nx = math.ceil((maxx + dx + cw - x0) / cw) + 1
    ny = math.ceil((maxy + dy + ch - y0) / ch) + 1
    return x0, y0, cw, ch, nx, ny, step, dx, dy


def _mark_near(
    shape: tuple[int, int], lo_x: np.ndarray, hi_x: np.ndarray, lo_y: np.ndarray, hi_y: np.ndarray
) -> np.ndarray:
    """Mark, in a window, every cell of the per-vertex cell ranges [lo, hi] (inclusive)."""
    near = np.zeros(shape, dtype=bool)
    if len(lo_x) == 0:
        return near
    kx = int((hi_x - lo_x).max()) + 1
    ky = int((hi_y - lo_y).max()) + 1
    for ox in range(kx):  # a handful of offsets, each vectorized over all vertices
        cx = np.minimum(lo_x + ox, hi_x)
        for oy in range(ky):
            near[np.minimum(lo_y + oy, hi_y), cx] = True
    return near


def _full_cells(
    near: np.ndarray, geom: Any, wx0: int, wy0: int, frame: tuple[float, float, float, float]
) -> np.ndarray:
    """Cells of a window wholly inside the zone: free regions whose first centre is covered."""
    x0, y0, cw, ch = frame
    labels, n_regions = ndimage.label(~near)
    if n_regions == 0:
        return np.zeros(near.shape, dtype=bool)
    flat = labels.ravel()
    # ndimage.label numbers regions in raster order, so each region starts where the running
    # maximum grows; checked, with np.unique as the fallback
    first = np.flatnonzero(np.diff(np.maximum.accumulate(flat), prepend=0) > 0)
    region = flat[first]
    if len(first) != n_regions or not np.array_equal(region, np.arange(1, n_regions + 1)):
        region, first = np.unique(flat, return_index=True)
        keep = region > 0
        region, first = region[keep], first[keep]
    rows, cols = np.divmod(first, near.shape[1])
    cx = x0 + (wx0 + cols + 0.5) * cw
    cy = y0 + (wy0 + rows + 0.5) * ch
    inside = np.zeros(n_regions + 1, dtype=bool)
    inside[region] = shapely.intersects_xy(geom, cx, cy)
    full: np.ndarray = inside[labels]
    return full


def _build_grid(geoms: np.ndarray, tolerance_m: float, cells: int) -> _Grid:
    """Classify grid cells as inside one zone, outside all, or mixed (with zone lists)."""
    bounds = shapely.total_bounds(geoms)
    x0, y0, cw, ch, nx, ny, step, dx, dy = _grid_frame(bounds, tolerance_m, cells)
    near_count = np.zeros((ny, nx), dtype=np.int32)
    full_count = np.zeros((ny, nx), dtype=np.int32)
    full_zone = np.full((ny, nx), -1, dtype=np.int32)

    dense = shapely.segmentize(shapely.boundary(geoms), step)
    coords, owner = shapely.get_coordinates(dense, return_index=True)
    with np.errstate(invalid="ignore"):
        lo_x = np.clip(np.floor((coords[:, 0] - dx - x0) / cw), 0, nx - 1).astype(np.int64)
        hi_x = np.clip(np.floor((coords[:, 0] + dx - x0) / cw), 0, nx - 1).astype(np.int64)
        lo_y = np.clip(np.floor((coords[:, 1] - dy - y0) / ch), 0, ny - 1).astype(np.int64)
        hi_y = np.clip(np.floor((coords[:, 1] + dy - y0) / ch), 0, ny - 1).astype(np.int64)
    starts = np.searchsorted(owner, np.arange(len(geoms) + 1))  # get_coordinates keeps order
    zone_bounds = shapely.bounds(geoms)
    windows: list[tuple[int, int, int, np.ndarray, np.ndarray]] = []
    for z, geom in enumerate(geoms):  # loops over zones, not points
        if geom is None or shapely.is_empty(geom):
            continue
        bx0, by0, bx1, by1 = zone_bounds[z]
        wx0 = max(math.floor((bx0 - dx - x0) / cw), 0)
        wy0 = max(math.floor((by0 - dy - y0) / ch), 0)
        wx1 = min(math.floor((bx1 + dx - x0) / cw) + 1, nx)
        wy1 = min(math.floor((by1 + dy - y0) / ch) + 1, ny)
        sel = slice(starts[z], starts[z + 1])
        near = _mark_near(
            (wy1 - wy0, wx1 - wx0),
            lo_x[sel] - wx0,
            hi_x[sel] - wx0,
            lo_y[sel] - wy0,
            hi_y[sel] - wy0,
        )
        full = _full_cells(near, geom, wx0, wy0, (x0, y0, cw, ch))
        near_count[wy0:wy1, wx0:wx1] += near
        full_count[wy0:wy1, wx0:wx1] += full
        full_zone[wy0:wy1, wx0:wx1][full] = z
        windows.append((z, wx0, wy0, near, full))

    mixed = ((near_count > 0) | (full_count > 1)).ravel()
    mixed_id = np.full(nx * ny, -1, dtype=np.int64)
    mixed_id[mixed] = np.arange(int(mixed.sum()))
    code = np.where(full_count.ravel() == 1, full_zone.ravel(), -1).astype(np.int32)
    code[mixed] = (-2 - mixed_id[mixed]).astype(np.int32)

    pair_cell: list[np.ndarray] = []
    pair_zone: list[np.ndarray] = []
    pair_full: list[np.ndarray] = []
    for z, wx0, wy0, near, full in windows:
        rows, cols = np.nonzero(near | full)
        flat = (rows + wy0).astype(np.int64) * nx + (cols + wx0)
        in_mixed = mixed[flat]
        pair_cell.append(mixed_id[flat[in_mixed]])
        pair_zone.append(np.full(int(in_mixed.sum()), z, dtype=np.int32))
        pair_full.append(full[rows[in_mixed], cols[in_mixed]])
    cell_of = np.concatenate(pair_cell) if pair_cell else np.zeros(0, np.int64)
    zone_of = np.concatenate(pair_zone) if pair_zone else np.zeros(0, np.int32)
    full_of = np.concatenate(pair_full) if pair_full else np.zeros(0, bool)
    order = np.lexsort((zone_of, cell_of))
    n_mixed = int(mixed.sum())
    ptr = np.zeros(n_mixed + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell_of, minlength=n_mixed), out=ptr[1:])
    return _Grid(x0, y0, cw, ch, nx, ny, code, ptr, zone_of[order], full_of[order].astype(bool))


@dataclass(frozen=True, slots=True)
class _SegmentBins:
    """Boundary segments listed per mixed cell: those that may lie within the tolerance."""

    ptr: np.ndarray  #: int64 (n_mixed + 1,)
    segment: np.ndarray  #: int64 boundary segment indices, grouped by mixed cell


def _split_segments(
    a: np.ndarray, b: np.ndarray, max_len: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut segments into pieces of at most ``max_len`` metres; returns (start, end, segment)."""
    length = np.hypot(b[:, 0] - a[:, 0], b[:, 1] - a[:, 1])
    k = np.maximum(np.ceil(length / max_len), 1).astype(np.int64)
    seg = np.repeat(np.arange(len(a)), k)
    i = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    kk = k[seg].astype(np.float64)
    delta = b[seg] - a[seg]
    start = np.where((i == 0)[:, None], a[seg], a[seg] + delta * (i / kk)[:, None])
    end = np.where((i + 1 == k[seg])[:, None], b[seg], a[seg] + delta * ((i + 1) / kk)[:, None])
    return start, end, seg


def _bin_segments(
    grid: _Grid,
    a: np.ndarray,
    b: np.ndarray,
    to_lonlat: Any,
    tolerance_m: float,
    max_abs_lat: float,
) -> _SegmentBins:
    """List, for each mixed cell, the boundary segments that may lie within the tolerance.

    Long segments are binned piece by piece (about one cell each), so a segment is listed only
    in the cells near it; distances are then measured to the whole segment, exactly as the
    grid-less path does.
    """
    a, b, seg_of = _split_segments(a, b, grid.ch * _M_PER_DEG_LAT_MIN)
    a_lon, a_lat = (np.asarray(v) for v in to_lonlat.transform(a[:, 0], a[:, 1]))
    b_lon, b_lat = (np.asarray(v) for v in to_lonlat.transform(b[:, 0], b[:, 1]))
    # each piece goes to the cells its lon/lat box, grown by the tolerance, touches (a piece
    # of a few cells is so short that its bulge off the straight lon/lat line is far below
    # the 5 % safety margin of the tolerance)
    dx, dy = _degree_tolerance(tolerance_m, max_abs_lat + grid.ch)
    dx, dy = dx + _EPS_DEG, dy + _EPS_DEG
    lo_x = np.floor((np.minimum(a_lon, b_lon) - dx - grid.x0) / grid.cw).astype(np.int64)
    hi_x = np.floor((np.maximum(a_lon, b_lon) + dx - grid.x0) / grid.cw).astype(np.int64)
    lo_y = np.floor((np.minimum(a_lat, b_lat) - dy - grid.y0) / grid.ch).astype(np.int64)
    hi_y = np.floor((np.maximum(a_lat, b_lat) + dy - grid.y0) / grid.ch).astype(np.int64)
    kx = int((hi_x - lo_x).max(initial=0)) + 1
    ky = int((hi_y - lo_y).max(initial=0)) + 1
    cells: list[np.ndarray] = []
    pieces: list[np.ndarray] = []
    every = np.arange(len(a), dtype=np.int64)
    for ox in range(kx):  # a few offsets, each vectorized over all pieces
        for oy in range(ky):
            cx, cy = lo_x + ox, lo_y + oy
            ok = (cx <= hi_x) & (cy <= hi_y) & (cx >= 0) & (cx < grid.nx)
            ok &= (cy >= 0) & (cy < grid.ny)
            flat = cy[ok] * grid.nx + cx[ok]
            code = grid.code[flat]
            mixed = code <= -2
            cells.append(-2 - code[mixed].astype(np.int64))
            pieces.append(every[ok][mixed])
    cell = np.concatenate(cells)
    n_seg = int(seg_of.max(initial=0)) + 1
    # pieces of one segment in the same cell collapse to one entry, sorted by cell
    key = np.unique(cell * n_seg + seg_of[np.concatenate(pieces)])
    cell, segment = np.divmod(key, n_seg)
    n_mixed = len(grid.mixed_ptr) - 1
    ptr = np.zeros(n_mixed + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell, minlength=n_mixed), out=ptr[1:])
    return _SegmentBins(ptr, segment)


def _expand_csr(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each i, the positions ptr[rows[i]]:ptr[rows[i]+1]; returns (owner i, position)."""
    lo = ptr[rows]
    counts = ptr[rows + 1] - lo
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    pos = np.repeat(lo - starts, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    return owner, pos


def _segment_distance(px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance from points to segments a-b (arrays of shape (n, 2))."""
    ex = b[:, 0] - a[:, 0]
    ey = b[:, 1] - a[:, 1]
    length2 = ex * ex + ey * ey
    with np.errstate(invalid="ignore", divide="ignore"):
        t = ((px - a[:, 0]) * ex + (py - a[:, 1]) * ey) / length2
    t = np.where(length2 > 0, np.clip(t, 0.0, 1.0), 0.0)
    # snap to the end vertex exactly, so a vertex shared by two zones gives equal distances
    qx = np.where(t >= 1.0, b[:, 0], a[:, 0] + t * ex)
    qy = np.where(t >= 1.0, b[:, 1], a[:, 1] + t * ey)
    distance: np.ndarray = np.hypot(px - qx, py - qy)
    return distance


def _round_um(metres: float) -> float:
    """``np.round(metres, 6)`` for one float, bit for bit, without numpy's call overhead.

    numpy rounds to n decimals as ``rint(x * 10**n) / 10**n``; Python's ``round`` also rounds
    half to even, and its integer result converts back to the same float exactly.
    """
    return round(metres * 1e6) / 1e6


def _first_per_group(group: np.ndarray) -> np.ndarray:
    """Positions of the first row of each run in a sorted group array."""
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, group[1:] != group[:-1]])


class ZoneIndex:
    """Bulk point-in-zone lookup with boundary tolerance for one :class:`ZoneLayer`.

    Parameters
    ----------
    layer
        The zones (EPSG:4326).
    tolerance_m
        Zones whose boundary lies within this many metres of a point are candidates.
    grid_cells
        Cells along the longer side of the acceleration grid (None: the default; 0: no grid,
        every point takes the exact path, which is slower but handy to compare).

    See the module docstring for the exact semantics.
    """

    def __init__(
        self, layer: ZoneLayer, tolerance_m: float = 10.0, *, grid_cells: int | None = None
    ) -> None:
        if not tolerance_m >= 0 or not math.isfinite(tolerance_m):
            raise ValueError(f"tolerance_m must be a finite number >= 0, not {tolerance_m!r}")
        started = time.perf_counter()
        self.layer = layer
        self.tolerance_m = float(tolerance_m)
        geoms = np.asarray(layer.geometries, dtype=object)
        self._geoms = geoms
        shapely.prepare(geoms)
        self._n = len(geoms)
        # rank of each zone id in string order: the documented tie-break
        self._id_rank = np.empty(self._n, dtype=np.int64)
        self._id_rank[np.argsort(np.asarray(layer.ids, dtype=str), kind="stable")] = np.arange(
            self._n
        )
        self._id_rank_list: list[int] = self._id_rank.tolist()  # scalar path: no numpy boxing
        self._tree = shapely.STRtree(geoms)
        present = geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)]
        bounds = shapely.total_bounds(present) if len(present) else np.zeros(4)
        self._utm = local_utm(bounds[[0, 2]], bounds[[1, 3]])
        self._to_utm = get_transformer("EPSG:4326", self._utm)
        self._build_segments(geoms)
        cells = DEFAULT_GRID_CELLS if grid_cells is None else int(grid_cells)
        self._grid = (
            _build_grid(geoms, self.tolerance_m, cells) if cells > 0 and len(present) else None
        )
        self._bins = None
        if self._grid is not None and self.tolerance_m > 0:
            self._bins = _bin_segments(
                self._grid,
                self._seg_a,
                self._seg_b,
                get_transformer(self._utm, "EPSG:4326"),
                self.tolerance_m,
                float(max(abs(bounds[1]), abs(bounds[3]))),
            )
        self.build_seconds = time.perf_counter() - started

    def _build_segments(self, geoms: np.ndarray) -> None:
        """Boundary segments of every zone in UTM metres."""
        lines, owner = shapely.get_parts(shapely.boundary(geoms), return_index=True)
        coords, line_of = shapely.get_coordinates(lines, return_index=True)
        x, y = self._to_utm.transform(coords[:, 0], coords[:, 1])
        xy = np.column_stack([x, y])
        same_line = line_of[:-1] == line_of[1:]
        # one (m, 4) array of segment ends; a and b are views of it, so the scalar path can
        # fetch a segment with one gather
        self._seg_ab = np.hstack([xy[:-1][same_line], xy[1:][same_line]])
        self._seg_a = self._seg_ab[:, :2]
        self._seg_b = self._seg_ab[:, 2:]
        self._seg_zone = owner[line_of[:-1][same_line]].astype(np.int64)
        self._seg_tree_cache: shapely.STRtree | None = None

    @property
    def _seg_tree(self) -> shapely.STRtree:
        """STRtree over the UTM boundary segments, built on first use (the grid rarely needs it)."""
        if self._seg_tree_cache is None:
            segments = shapely.linestrings(np.stack([self._seg_a, self._seg_b], axis=1))
            self._seg_tree_cache = shapely.STRtree(segments)
        return self._seg_tree_cache

    @property
    def grid_info(self) -> dict[str, Any]:
        """Size of the acceleration grid and its share of mixed cells (for logs, benchmarks)."""
        if self._grid is None:
            return {"cells": 0, "mixed_share": 1.0, "build_seconds": self.build_seconds}
        grid = self._grid
        return {
            "nx": grid.nx,
            "ny": grid.ny,
            "cell_m": grid.ch * _M_PER_DEG_LAT_MIN,
            "mixed_share": float((grid.code <= -2).mean()),
            "inside_share": float((grid.code >= 0).mean()),
            "build_seconds": self.build_seconds,
        }

    # ----------------------------------------------------------------------------- lookup

    def lookup(self, lon: Any, lat: Any) -> LayerLookup:
        """Zones of n points as arrays (see :class:`geo_router.city.models.LayerLookup`).

        Parameters
        ----------
        lon, lat
            Arrays (or scalars) of valid coordinates, EPSG:4326.
        """
        x = np.atleast_1d(np.asarray(lon, dtype=np.float64)).ravel()
        y = np.atleast_1d(np.asarray(lat, dtype=np.float64)).ravel()
        n = len(x)
        code = self._cell_codes(x, y)
        fast = np.flatnonzero(code >= 0)
        exact = np.flatnonzero(code <= -2)
        primary = np.full(n, -1, dtype=np.int32)
        status = np.full(n, _OUTSIDE, dtype=np.int8)
        counts = np.zeros(n, dtype=np.int64)
        primary[fast] = code[fast]
        status[fast] = _INSIDE
        counts[fast] = 1
        if len(exact):
            res = self._resolve(x[exact], y[exact], code[exact])
            primary[exact] = res.primary
            status[exact] = res.status
            counts[exact] = np.bincount(res.cand_point, minlength=len(exact))
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        cand_zone = np.empty(int(ptr[-1]), dtype=np.int32)
        cand_dist = np.zeros(int(ptr[-1]), dtype=np.float64)
        cand_zone[ptr[fast]] = code[fast]
        if len(exact):
            local_counts = counts[exact]
            local_start = np.cumsum(local_counts) - local_counts
            rank = np.arange(len(res.cand_point)) - local_start[res.cand_point]
            pos = ptr[exact[res.cand_point]] + rank
            cand_zone[pos] = res.cand_zone
            cand_dist[pos] = res.cand_dist
        return LayerLookup(primary, status, ptr, cand_zone, cand_dist)

    def lookup_one(self, lon: float, lat: float) -> tuple[int, int, list[tuple[int, float]]]:
        """Zones of one point with scalar work: the single-request fast path.

        Exactly the answer of ``lookup([lon], [lat])`` (same tie-breaks, same micrometre
        rounding), without the array machinery: a grid cell inside one zone or outside all
        answers at once; a mixed cell tests only its own zones and boundary segments.

        Parameters
        ----------
        lon, lat
            One point, EPSG:4326; non-finite values are outside coverage.

        Returns
        -------
        tuple
            ``(primary, status, candidates)``: primary zone row or -1, status index into
            :data:`geo_router.city.models.STATUS_CODES`, and ``[(zone_row, distance_m), ...]``,
            primary first, then by distance, then by zone id.
        """
        x, y = float(lon), float(lat)
        if not (math.isfinite(x) and math.isfinite(y)):
            return -1, _OUTSIDE, []
        grid = self._grid
        if grid is None:
            return self._lookup_one_bulk(x, y)
        # the same float operations as _Grid.cells; compared before flooring, so a far-off
        # point never overflows int conversion
        fx = (x - grid.x0) / grid.cw
        fy = (y - grid.y0) / grid.ch
        if not (0.0 <= fx < grid.nx and 0.0 <= fy < grid.ny):
            return -1, _OUTSIDE, []
        code = grid.code.item(int(fy) * grid.nx + int(fx))
        if code >= 0:
            return code, _INSIDE, [(code, 0.0)]
        if code == -1:
            return -1, _OUTSIDE, []
        return self._resolve_one(x, y, -2 - code)

    def _lookup_one_bulk(self, x: float, y: float) -> tuple[int, int, list[tuple[int, float]]]:
        """lookup_one through the array path (no grid to shortcut with)."""
        res = self.lookup(np.array((x,)), np.array((y,)))
        cands = list(zip(res.cand_zone.tolist(), res.cand_dist_m.tolist(), strict=True))
        return int(res.primary[0]), int(res.status[0]), cands

    def _resolve_one(
        self, x: float, y: float, mixed: int
    ) -> tuple[int, int, list[tuple[int, float]]]:
        """The exact answer for one point in mixed cell ``mixed`` (scalar twin of _resolve)."""
        grid = self._grid
        assert grid is not None
        lo, hi = grid.mixed_ptr.item(mixed), grid.mixed_ptr.item(mixed + 1)
        rank = self._id_rank_list
        covered: dict[int, bool] = {}  # zone -> its interior holds the point
        zones = grid.mixed_zone[lo:hi].tolist()
        for z, full in zip(zones, grid.mixed_full[lo:hi].tolist(), strict=True):
            if full:  # the zone covers the whole cell, beyond the tolerance
                covered[z] = True
            elif shapely.intersects_xy(self._geoms[z], x, y):
                covered[z] = bool(shapely.contains_xy(self._geoms[z], x, y))
        primary = -1
        if covered:
            primary = min(covered, key=lambda z: (not covered[z], rank[z]))
        cands = [(z, 0.0) for z in covered]
        for z, d in self._near_one(x, y, mixed).items():
            if z not in covered:
                cands.append((z, d))
        cands.sort(key=lambda c: (c[0] != primary, c[1], rank[c[0]]))
        status = _OUTSIDE if primary < 0 else _NEAR if len(cands) > 1 else _INSIDE
        return primary, status, cands

    def _near_one(self, x: float, y: float, mixed: int) -> dict[int, float]:
        """Zone -> metres (rounded) for boundaries within the tolerance of one point.

        Scalar twin of :func:`_segment_distance` + :meth:`_near_zones` over the segments
        binned in the point's mixed cell: the same IEEE operations in the same order, numpy's
        own ``hypot``, and :func:`_round_um`, so the distances are bit-identical.
        """
        bins = self._bins
        if bins is None:
            return {}
        lo, hi = bins.ptr.item(mixed), bins.ptr.item(mixed + 1)
        if hi == lo:
            return {}
        seg = bins.segment[lo:hi]
        ux, uy = self._to_utm.transform(x, y)
        off_x: list[float] = []
        off_y: list[float] = []
        for ax, ay, bx, by in self._seg_ab[seg].tolist():
            ex, ey = bx - ax, by - ay
            length2 = ex * ex + ey * ey
            t = 0.0
            if length2 > 0:
                t = min(max(((ux - ax) * ex + (uy - ay) * ey) / length2, 0.0), 1.0)
            if t >= 1.0:
                off_x.append(ux - bx)
                off_y.append(uy - by)
            else:
                off_x.append(ux - (ax + t * ex))
                off_y.append(uy - (ay + t * ey))
        tolerance = self.tolerance_m
        near: dict[int, float] = {}
        for z, d in zip(self._seg_zone[seg].tolist(), np.hypot(off_x, off_y).tolist(), strict=True):
            # rounding is monotonic, so the nearest rounded distance is the rounded nearest one
            if d <= tolerance and (d := _round_um(d)) < near.get(z, math.inf):
                near[z] = d
        return near

    def covers_any(self, lon: Any, lat: Any) -> np.ndarray:
        """Whether any zone covers each point (axis-swap check: ``covers_any(lat, lon)``)."""
        x = np.atleast_1d(np.asarray(lon, dtype=np.float64)).ravel()
        y = np.atleast_1d(np.asarray(lat, dtype=np.float64)).ravel()
        code = self._cell_codes(x, y)
        out = code >= 0
        exact = np.flatnonzero(code <= -2)
        if len(exact):
            point, zone, full = self._pairs(x[exact], y[exact], code[exact])
            hit = full.copy()
            self._test_pairs(x[exact], y[exact], point, zone, ~full, hit, None)
            out[exact[np.unique(point[hit])]] = True
        return out

    def overlaps(self, geometry: Any) -> list[ZoneShare]:
        """Zones intersecting a polygon, with their share of its area, largest first.

        Raises
        ------
        InvalidGeometryError
            When the geometry is not a valid, non-empty (Multi)Polygon.
        """
        if not isinstance(geometry, shapely.Geometry) or geometry.geom_type not in (
            "Polygon",
            "MultiPolygon",
        ):
            kind = getattr(geometry, "geom_type", type(geometry).__name__)
            raise InvalidGeometryError(f"an area must be a Polygon or MultiPolygon, not {kind}")
        if geometry.is_empty or not geometry.is_valid:
            why = "empty" if geometry.is_empty else shapely.is_valid_reason(geometry)
            raise InvalidGeometryError(f"the area geometry is not usable: {why}")
        total = float(shapely.area(to_utm(np.array([geometry], dtype=object), self._utm))[0])
        if total <= 0:
            raise InvalidGeometryError("the area geometry has no area")
        hits = self._tree.query(geometry, predicate="intersects")
        if len(hits) == 0:
            return []
        parts = shapely.intersection(self._geoms[hits], geometry)
        areas = shapely.area(to_utm(parts, self._utm))
        keep = areas > 0
        hits, areas = hits[keep], areas[keep]
        order = np.lexsort((self._id_rank[hits], -areas))
        names = self.layer.names
        return [
            ZoneShare(
                zone_id=str(self.layer.ids[z]),
                name=None if names is None else names[z],
                share=float(min(a / total, 1.0)),
                area_m2=float(a),
            )
            for z, a in zip(hits[order], areas[order], strict=True)
        ]

    # ----------------------------------------------------------------------------- internals

    def _cell_codes(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Grid code per point: zone >= 0, -1 surely outside, <= -2 needs the exact path."""
        if self._grid is None:
            finite = np.isfinite(x) & np.isfinite(y)
            return np.where(finite & (self._n > 0), -2, -1).astype(np.int64)
        cell = self._grid.cells(x, y)
        code = np.full(len(x), -1, dtype=np.int64)
        on = cell >= 0
        code[on] = self._grid.code[cell[on]]
        return code

    def _pairs(
        self, x: np.ndarray, y: np.ndarray, code: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, zone, zone-wholly-covers-cell) pairs worth testing for exact-path points."""
        if self._grid is None:
            point, zone = self._tree.query(shapely.points(x, y))
            return point.astype(np.int64), zone.astype(np.int32), np.zeros(len(point), bool)
        point, pos = _expand_csr(self._grid.mixed_ptr, -2 - code)
        return point, self._grid.mixed_zone[pos], self._grid.mixed_full[pos]

    def _test_pairs(
        self,
        x: np.ndarray,
        y: np.ndarray,
        point: np.ndarray,
        zone: np.ndarray,
        todo: np.ndarray,
        covered: np.ndarray,
        interior: np.ndarray | None,
    ) -> None:
        """Fill covered (and interior) for the pairs in ``todo``, one prepared zone at a time."""
        rows = np.flatnonzero(todo)
        rows = rows[np.argsort(zone[rows], kind="stable")]
        zones = zone[rows]
        bounds = np.r_[_first_per_group(zones), len(rows)]
        for a, b in itertools.pairwise(bounds):  # loops over zones
            sel = rows[a:b]
            geom = self._geoms[zones[a]]
            px, py = x[point[sel]], y[point[sel]]
            hit = shapely.intersects_xy(geom, px, py)
            covered[sel] = hit
            if interior is not None and hit.any():
                interior[sel[hit]] = shapely.contains_xy(geom, px[hit], py[hit])

    def _near_zones(
        self, x: np.ndarray, y: np.ndarray, code: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, zone, metres) for every zone boundary within the tolerance, in UTM."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        if len(x) == 0 or self.tolerance_m <= 0:
            return empty
        ux, uy = self._to_utm.transform(x, y)
        ux, uy = np.asarray(ux), np.asarray(uy)
        if self._bins is not None:
            # the pieces binned in each point's mixed cell, measured with numpy
            q, pos = _expand_csr(self._bins.ptr, -2 - code)
            seg = self._bins.segment[pos]
        else:
            reach = self.tolerance_m * (1 + 1e-9) + 1e-9  # GEOS and numpy may differ in a bit
            points = shapely.points(ux, uy)
            q, seg = self._seg_tree.query(points, predicate="dwithin", distance=reach)
        d = _segment_distance(ux[q], uy[q], self._seg_a[seg], self._seg_b[seg])
        keep = d <= self.tolerance_m
        q, zone, d = q[keep].astype(np.int64), self._seg_zone[seg[keep]], d[keep]
        key = q * self._n + zone
        order = np.lexsort((d, key))
        first = order[_first_per_group(key[order])]  # the nearest segment of each (point, zone)
        # micrometres: equal distances computed along different segments then tie-break by id
        return q[first], zone[first], np.round(d[first], 6)

    def _resolve(self, x: np.ndarray, y: np.ndarray, code: np.ndarray) -> _Resolved:
        """Exact answers for points whose grid cell is mixed (or when there is no grid)."""
        k = len(x)
        point, zone, full = self._pairs(x, y, code)
        covered = full.copy()
        interior = full.copy()
        self._test_pairs(x, y, point, zone, ~full, covered, interior)
        point, zone, interior = point[covered], zone[covered].astype(np.int64), interior[covered]

        near_point, near_zone, near_dist = self._near_zones(x, y, code)
        # a zone that covers the point is a candidate at distance 0, whatever its boundary says
        covered_keys = np.sort(point * self._n + zone)
        near_keys = near_point * self._n + near_zone
        at = np.clip(np.searchsorted(covered_keys, near_keys), 0, max(len(covered_keys) - 1, 0))
        extra = (
            ~(covered_keys[at] == near_keys) if len(covered_keys) else np.ones(len(near_keys), bool)
        )
        point = np.r_[point, near_point[extra]]
        zone = np.r_[zone, near_zone[extra]]
        dist = np.r_[np.zeros(len(interior)), near_dist[extra]]
        n_cov = len(interior)
        rank = self._id_rank[zone]

        primary = np.full(k, -1, dtype=np.int32)
        cov = np.arange(n_cov)
        order = np.lexsort((rank[cov], ~interior, point[cov]))
        first = order[_first_per_group(point[order])]
        primary[point[first]] = zone[first]
        is_primary = np.zeros(len(point), dtype=bool)
        is_primary[first] = True

        order = np.lexsort((rank, dist, ~is_primary, point))
        point, zone, dist = point[order], zone[order], dist[order]
        n_cand = np.bincount(point, minlength=k)
        status = np.where(primary < 0, _OUTSIDE, np.where(n_cand > 1, _NEAR, _INSIDE))
        return _Resolved(primary, status.astype(np.int8), point, zone.astype(np.int32), dist)


@dataclass(slots=True)
class _Resolved:
    """Exact-path answers: per point primary/status, and candidates sorted by point."""

    primary: np.ndarray
    status: np.ndarray
    cand_point: np.ndarray
    cand_zone: np.ndarray
    cand_dist: np.ndarray
