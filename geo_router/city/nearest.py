"""Exact k-nearest facilities by geodesic distance.

Two indexes answer ``nearest(lon, lat, k) -> NearestLookup``:

* :class:`StaticNearestIndex` - a scipy cKDTree over unit-sphere xyz, bulk and fast, immutable;
* :class:`DynamicNearestIndex` - an rtree 3-D index over the same xyz that can take facilities
  out of service, add and move them while it is being queried (one query point at a time).

Both find candidates on the sphere and re-rank them by WGS84 geodesic distance. The sphere is
only a filter: every facility that could be among the k nearest on the ellipsoid is ranked.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from rtree import index as rtree_index
from scipy.spatial import cKDTree

from geo_router.city import coords
from geo_router.city.facilities import FacilitySet
from geo_router.city.helper_threads import CPUS, helper_thread
from geo_router.city.models import NearestLookup

# Why a ratio of 1.0102 makes the spherical filter exact.
# Points are placed on the unit sphere at their geodetic (lon, lat). Along any curve, the WGS84
# length divided by (sphere length x R) is a mix of the local scale factors M(lat)/R (north-south)
# and N(lat)/R (east-west), which lie between a(1-e^2)/R and a/sqrt(1-e^2)/R. Hence for every pair
#   m R angle <= geodesic distance <= M R angle,  with M / m = 6399593.6 / 6335439.3 = 1.01013.
# If the k nearest by angle end at angle t_k, the k-th geodesic distance is <= M R t_k, so any
# facility among the true k nearest has angle <= (M/m) t_k. Ranking every facility within
# 1.0102 t_k (plus a float slack) by geodesic distance is therefore exact. (1.01 would be short.)
_AXIS_RATIO = 6399593.6258 / 6335439.3271
SPHERE_SLACK = 1.0102
assert SPHERE_SLACK > _AXIS_RATIO
_CHORD_EPS = 1e-12  # absolute slack in chord units for float rounding (~6 micrometres)
_CHORD2_EPS = 1e-15  # absolute slack in squared chord from 2 - 2 cos (about 0.2 m)
# The same bound with the geodesic of the k-th already known: geodesic >= m R angle for every
# pair, so a facility at angle t can tie or beat a k-th at geodesic g_k only if m R t <= g_k.
# m R = a (1 - e^2) = 6335439.327 m, rounded down (relative slack 5e-8) for float rounding.
_MIN_METRES_PER_RADIAN = 6335439.0
_GEODESIC_EPS_M = 1e-6  # absolute slack on g_k (Geod.inv is accurate to ~15 nanometres)
#: cKDTree.query threads. Measured on 2 cores (1M points, k=2): workers=-1 cut wall time by a
#: quarter on an idle machine for +45% CPU (thread start-up, lock waits) and was slower under
#: load; bulk routing keeps the second core for its helper thread, so queries stay on one.
_KD_WORKERS = 1

#: Brute force beats a tree walk for small sets when routing one point (numpy call overheads).
_BRUTE_FORCE_MAX = 4096
#: Up to this many facilities, scanning the dot products as a Python list beats numpy's
#: per-call overheads (partition + nonzero) for one point.
_PY_SCAN_MAX = 64


def unit_xyz(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Unit-sphere xyz (n, 3) of geodetic lon/lat in degrees; chord order = great-circle order."""
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    cos_phi = np.cos(phi)
    return np.column_stack((cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)))


def _inverse(
    lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic metres and bearings in [0, 360) of 1-D float64 arrays (all four overwritten).

    Large inputs are split in two: pyproj's loop runs without the GIL, so the second half
    goes to a helper thread while this one computes the first.
    """
    n = lon1.size
    if n >= SPLIT_GEODESICS_MIN and _CPUS > 1:
        half = n // 2
        rest = helper_thread("geodesic").submit(
            _inverse_inplace, lon1[half:], lat1[half:], lon2[half:], lat2[half:]
        )
        try:
            _inverse_inplace(lon1[:half], lat1[:half], lon2[:half], lat2[:half])
        finally:
            rest.result()
    else:
        _inverse_inplace(lon1, lat1, lon2, lat2)
    bearing = np.mod(lon1, 360.0, out=lon1)  # pyproj wrote the azimuths over lon1
    bearing[bearing >= 360.0] = 0.0  # -1e-17 mod 360 rounds to 360
    return lon2, bearing  # and the distances over lon2


def _inverse_inplace(
    lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
) -> None:
    """Geod.inv leaving the azimuths in ``lon1`` and the distances in ``lon2``."""
    az, _, dist = coords.GEOD.inv(lon1, lat1, lon2, lat2, inplace=True)
    if az is not lon1:  # pyproj had to copy (not contiguous float64): write back
        lon1[:] = az
    if dist is not lon2:
        lon2[:] = dist


#: Bulk geodesics of at least this many pairs are split over two threads (below it, the
#: hand-off costs more than it saves; the 10,000-point batch path stays on one thread).
SPLIT_GEODESICS_MIN = 200_000
_CPUS = CPUS  # a module global, so tests can pretend to have two cores


def _bearing(az: float) -> float:
    """A forward azimuth as a bearing in [0, 360)."""
    az %= 360.0
    return 0.0 if az >= 360.0 else az  # -1e-17 % 360 rounds to 360


def _chord_limit_scalar(chord_k: float) -> float:
    """:func:`_chord_limit` for one float, without numpy (single-point hot path)."""
    angle = min(2.0 * math.asin(min(chord_k / 2.0, 1.0)) * SPHERE_SLACK, math.pi)
    return 2.0 * math.sin(angle / 2.0) + _CHORD_EPS


def _chord_limit(chord_k: np.ndarray | float) -> np.ndarray:
    """Chord within which every possibly-k-nearest facility lies, given the k-th chord."""
    angle = 2.0 * np.arcsin(np.clip(np.asarray(chord_k, dtype=np.float64) / 2.0, 0.0, 1.0))
    angle = np.minimum(angle * SPHERE_SLACK, np.pi)
    return 2.0 * np.sin(angle / 2.0) + _CHORD_EPS


#: Single-point candidate grid: cells of about this many metres (north-south), built lazily
#: in blocks of _GRID_BLOCK x _GRID_BLOCK cells, cached per k up to _GRID_MAX_K.
_GRID_CELL_M = 150.0
_GRID_BLOCK = 8
_GRID_MAX_K = 5
_GRID_MAX_CELLS = 100_000  # cached (cell, k) entries; beyond it new cells take the plain path
_GRID_PAD_DEG = 0.5  # the grid covers the facilities' bounding box padded by this much
_GRID_MAX_LAT = 80.0  # no grid near the poles (cells would be needlessly lopsided)
_GRID_MAX_SPAN_DEG = 20.0  # no grid for sets spread over countries
_METRES_PER_DEG_LAT = 110_574.0  # the smallest (at the equator): cells are at most this tall
#: Absolute slack on a cell's circumradius in chord units (6 mm): covers the float rounding
#: of mapping a query to its cell and of the cell geometry.
_CELL_EPS = 1e-9


class _CandidateGrid:
    """Per-cell candidate facilities for single-point k-nearest queries.

    For each cell (a lon/lat rectangle) and k, the facilities that can be among the k nearest
    of ANY point of the cell. With ``c`` the chord from the cell centre to a facility and
    ``r`` a bound on the chord from the centre to any point of the cell, every point's chord
    to that facility lies in ``[c - r, c + r]``. So every point's k-th chord is at most
    ``U_k``, the k-th smallest ``c + r``, and (by the ratio argument of ``SPHERE_SLACK``)
    every facility among a point's k nearest on the ellipsoid has chord at most
    ``_chord_limit(U_k)``: the cell keeps the facilities with ``c - r`` within that limit.
    """

    def __init__(self, xyz: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> None:
        self._xyz = xyz
        self.cells: dict[int, list[tuple[float, float, int, int]]] = {}
        self.usable = False
        if lon.size == 0:
            return
        lat0 = float(lat.min()) - _GRID_PAD_DEG
        lat1 = float(lat.max()) + _GRID_PAD_DEG
        lon0 = max(float(lon.min()) - _GRID_PAD_DEG, -180.0)
        lon1 = min(float(lon.max()) + _GRID_PAD_DEG, 180.0)
        if (
            lat0 < -_GRID_MAX_LAT
            or lat1 > _GRID_MAX_LAT
            or lat1 - lat0 > _GRID_MAX_SPAN_DEG
            or lon1 - lon0 > _GRID_MAX_SPAN_DEG
        ):
            return
        self.dlat = _GRID_CELL_M / _METRES_PER_DEG_LAT
        self.dlon = self.dlat / math.cos(math.radians((lat0 + lat1) / 2.0))
        self.lon0, self.lat0 = lon0, lat0
        self.inv_dlon, self.inv_dlat = 1.0 / self.dlon, 1.0 / self.dlat
        self.nx = int((lon1 - lon0) * self.inv_dlon) + 1
        self.ny = int((lat1 - lat0) * self.inv_dlat) + 1
        self.usable = True

    def build_block(
        self, ix: int, iy: int, k: int, lon: list[float], lat: list[float], rank: list[int]
    ) -> None:
        """Cache the candidates of the block of cells holding cell (ix, iy), for k.

        Each candidate is stored as ``(lon, lat, id rank, row)``, ready for ranking.
        """
        b = _GRID_BLOCK
        bx0, by0 = ix - ix % b, iy - iy % b
        cx = np.arange(bx0, min(bx0 + b, self.nx))
        cy = np.arange(by0, min(by0 + b, self.ny))
        mesh_x, mesh_y = np.meshgrid(cx, cy, indexing="xy")
        gx, gy = mesh_x.ravel(), mesh_y.ravel()
        west = self.lon0 + gx * self.dlon
        south = self.lat0 + gy * self.dlat
        north = south + self.dlat
        centre = unit_xyz(west + self.dlon / 2.0, south + self.dlat / 2.0)
        # The farthest point of a cell from its centre is a corner (away from the poles): for
        # a fixed latitude the chord grows with the longitude offset, and along the cell's
        # east edge the chord falls then rises (least near the centre latitude): it peaks at
        # a corner.
        east = west + self.dlon
        radius = (
            np.maximum(
                np.linalg.norm(unit_xyz(east, north) - centre, axis=1),
                np.linalg.norm(unit_xyz(east, south) - centre, axis=1),
            )
            * (1.0 + 1e-9)
            + _CELL_EPS
        )
        chord2 = np.maximum(2.0 - 2.0 * (centre @ self._xyz.T), 0.0)
        low = np.sqrt(np.maximum(chord2 - _CHORD2_EPS, 0.0)) - radius[:, None]
        high = np.sqrt(chord2 + _CHORD2_EPS) + radius[:, None]
        u_k = np.partition(high, k - 1, axis=1)[:, k - 1]
        limit = _chord_limit(u_k)
        keep = low <= limit[:, None]
        cells = self.cells
        xs: list[int] = gx.tolist()
        ys: list[int] = gy.tolist()
        for cell, (x, y) in enumerate(zip(xs, ys, strict=True)):
            cells[(y * self.nx + x) * 8 + k] = [
                (lon[j], lat[j], rank[j], j) for j in np.flatnonzero(keep[cell]).tolist()
            ]


def _empty_lookup(n: int, k: int) -> NearestLookup:
    """A NearestLookup with no facilities: -1 indices, nan distances and bearings."""
    return NearestLookup(
        index=np.full((n, k), -1, dtype=np.int32),
        distance_m=np.full((n, k), np.nan),
        bearing_deg=np.full((n, k), np.nan),
    )


def _as_points(lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Query coordinates as equal-length 1-D float64 arrays."""
    lon_a = np.atleast_1d(np.asarray(lon, dtype=np.float64)).ravel()
    lat_a = np.atleast_1d(np.asarray(lat, dtype=np.float64)).ravel()
    if lon_a.shape != lat_a.shape:
        raise ValueError(f"lon and lat differ in length ({lon_a.size} != {lat_a.size})")
    return lon_a, lat_a


class StaticNearestIndex:
    """Exact k-nearest facilities of one immutable :class:`FacilitySet`, in bulk.

    Parameters
    ----------
    fs
        The facilities; the index keeps a reference and never changes it.
    """

    def __init__(self, fs: FacilitySet) -> None:
        self.facilities = fs
        self._n = len(fs.ids)
        self._xyz = unit_xyz(fs.lon, fs.lat)
        self._tree = cKDTree(self._xyz) if self._n else None
        # Rank of each id in sorted order: the tie-break key when distances are equal.
        self._id_rank = np.empty(self._n, dtype=np.int64)
        self._id_rank[np.argsort(fs.ids.astype(str), kind="stable")] = np.arange(self._n)
        self._lon_list: list[float] = fs.lon.tolist()
        self._lat_list: list[float] = fs.lat.tolist()
        self._id_rank_list: list[int] = self._id_rank.tolist()
        self._grid = _CandidateGrid(self._xyz, fs.lon, fs.lat)
        self._grid_on = self._grid.usable

    def nearest(self, lon: np.ndarray, lat: np.ndarray, k: int) -> NearestLookup:
        """The k nearest facilities of each point by geodesic distance.

        Parameters
        ----------
        lon, lat
            Query points (valid EPSG:4326 coordinates; the caller checks them).
        k
            How many facilities per point.

        Returns
        -------
        NearestLookup
            (n, k) arrays sorted by distance then id; -1 / nan where fewer than k exist.
        """
        lon_a, lat_a = _as_points(lon, lat)
        n = lon_a.size
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if self._n == 0 or n == 0:
            return _empty_lookup(n, k)
        if n == 1 and self._n <= _BRUTE_FORCE_MAX:
            return self._nearest_one(float(lon_a[0]), float(lat_a[0]), k)
        return self._nearest_bulk(lon_a, lat_a, k)

    def nearest_one(self, lon: float, lat: float, k: int) -> list[tuple[int, float, float]]:
        """The k nearest of one point as ``(row, metres, bearing)``, nearest first.

        The single-point hot path of routing. For k <= 5 and points on the candidate grid
        (the facilities' box padded by half a degree, away from the poles), scalar geodesics
        to the cached candidates of the point's 150 m cell; otherwise one numpy dot product
        over the set picks the candidates. Ties are ordered by id, as in :meth:`nearest`.
        """
        n = self._n
        if n == 0:
            return []
        k_eff = min(int(k), n)
        if self._grid_on and k_eff < n and k_eff <= _GRID_MAX_K:
            # Most points: the candidates of their grid cell, no numpy (see _CandidateGrid).
            grid = self._grid
            fx = (lon - grid.lon0) * grid.inv_dlon
            fy = (lat - grid.lat0) * grid.inv_dlat
            cand_grid = None
            if 0.0 <= fx < grid.nx and 0.0 <= fy < grid.ny:
                key = (int(fy) * grid.nx + int(fx)) * 8 + k_eff
                cand_grid = grid.cells.get(key) or self._grid_candidates(lon, lat, k_eff)
            if cand_grid is not None:
                inv = coords.GEOD.inv
                ranked = []
                for flon, flat, rank, j in cand_grid:
                    az, _, dist = inv(lon, lat, flon, flat)
                    ranked.append((dist, rank, j, az))
                ranked.sort()
                return [(j, dist, _bearing(az)) for dist, _rank, j, az in ranked[:k_eff]]
        lam, phi = math.radians(lon), math.radians(lat)
        cos_phi = math.cos(phi)
        dots = self._xyz @ np.array(
            (cos_phi * math.cos(lam), cos_phi * math.sin(lam), math.sin(phi))
        )
        cand: list[int] | range
        if k_eff < n:
            if n <= _PY_SCAN_MAX:
                listed = dots.tolist()
                dot_k = sorted(listed)[n - k_eff]
            else:
                part = dots.copy()
                part.partition(n - k_eff)
                dot_k = part.item(n - k_eff)
            # 2 - 2 cos is exact to ~1e-15 in squared chord: widen by that before the ratio
            chord_k = math.sqrt(max(2.0 - 2.0 * dot_k, 0.0) + _CHORD2_EPS)
            limit = _chord_limit_scalar(chord_k)
            cut = 1.0 - (limit * limit + _CHORD2_EPS) / 2.0
            if n <= _PY_SCAN_MAX:
                cand = [j for j, dot in enumerate(listed) if dot >= cut]
            else:
                cand = (dots >= cut).nonzero()[0].tolist()
        else:
            cand = range(n)
        return self._rank(lon, lat, cand, k_eff)

    def _rank(
        self, lon: float, lat: float, cand: list[int] | range, k: int
    ) -> list[tuple[int, float, float]]:
        """Geodesics to the candidates, the first k by (distance, id) as (row, m, bearing)."""
        inv = coords.GEOD.inv
        lons, lats, rank = self._lon_list, self._lat_list, self._id_rank_list
        ranked = []
        for j in cand:
            az, _, dist = inv(lon, lat, lons[j], lats[j])
            ranked.append((dist, rank[j], j, az))
        ranked.sort()
        return [(j, dist, _bearing(az)) for dist, _rank, j, az in ranked[:k]]

    def _grid_candidates(
        self, lon: float, lat: float, k: int
    ) -> list[tuple[float, float, int, int]] | None:
        """(lon, lat, id rank, row) of the candidates of the point's grid cell (cached).

        None off the grid, or when the cell is not cached and the cache is full.
        """
        grid = self._grid
        fx = (lon - grid.lon0) * grid.inv_dlon
        fy = (lat - grid.lat0) * grid.inv_dlat
        if not (0.0 <= fx < grid.nx and 0.0 <= fy < grid.ny):
            return None
        ix, iy = int(fx), int(fy)
        key = (iy * grid.nx + ix) * 8 + k
        cand = grid.cells.get(key)
        if cand is None:
            if len(grid.cells) >= _GRID_MAX_CELLS:
                return None
            grid.build_block(ix, iy, k, self._lon_list, self._lat_list, self._id_rank_list)
            cand = grid.cells[key]
        return cand

    def _nearest_one(self, lon: float, lat: float, k: int) -> NearestLookup:
        """One point through :meth:`nearest_one`, as a NearestLookup."""
        out = _empty_lookup(1, k)
        for col, (j, dist, az) in enumerate(self.nearest_one(lon, lat, k)):
            out.index[0, col] = j
            out.distance_m[0, col] = dist
            out.bearing_deg[0, col] = az
        return out

    def _candidates(self, xyz: np.ndarray, k_eff: int) -> tuple[np.ndarray, np.ndarray]:
        """Every facility within the exactness limit of each point: (n, w) indices, chords.

        Slots beyond the limit hold index ``n_facilities`` and chord inf. Rows whose w-th
        neighbour still lies within the limit are queried again with a doubled width.
        """
        assert self._tree is not None
        n = len(xyz)
        width = min(self._n, max(2 * k_eff, k_eff + 4))
        chords, idx = self._tree.query(xyz, k=width, workers=_KD_WORKERS)
        chords, idx = chords.reshape(n, -1), idx.reshape(n, -1)
        limit = _chord_limit(chords[:, k_eff - 1])
        while width < self._n:
            short = np.flatnonzero(chords[:, -1] <= limit)
            if short.size == 0:
                break
            width = min(self._n, width * 2)
            more_c, more_i = self._tree.query(xyz[short], k=width, workers=_KD_WORKERS)
            pad = width - chords.shape[1]
            chords = np.pad(chords, ((0, 0), (0, pad)), constant_values=np.inf)
            idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=self._n)
            chords[short] = more_c.reshape(short.size, -1)
            idx[short] = more_i.reshape(short.size, -1)
        beyond = chords > limit[:, None]
        chords[beyond] = np.inf
        idx[beyond] = self._n
        return idx, chords

    def _geodesics(
        self, lon: np.ndarray, lat: np.ndarray, fac: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Metres and bearings from each point to its facilities ``fac`` (n, w) -> (n, w)."""
        w = fac.shape[1]
        flat = fac.ravel()
        dist, bearing = _inverse(
            np.repeat(lon, w) if w > 1 else lon.copy(),
            np.repeat(lat, w) if w > 1 else lat.copy(),
            self.facilities.lon[flat],
            self.facilities.lat[flat],
        )
        return dist.reshape(fac.shape), bearing.reshape(fac.shape)

    def _sort_rows(
        self, idx: np.ndarray, dist: np.ndarray, bearing: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first k columns of each row after sorting by (distance, id rank)."""
        if idx.shape[1] == 1:
            return idx, dist, bearing
        rank = self._id_rank[idx]
        order = np.lexsort((rank, dist), axis=1)[:, :k]
        return (
            np.take_along_axis(idx, order, axis=1),
            np.take_along_axis(dist, order, axis=1),
            np.take_along_axis(bearing, order, axis=1),
        )

    def _rerank_wide(
        self, lon: np.ndarray, lat: np.ndarray, xyz: np.ndarray, k_eff: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows where more than k facilities could be nearest: rank every one within the limit."""
        n = lon.size
        idx, chords = self._candidates(xyz, k_eff)
        found = np.isfinite(chords)
        rows = np.broadcast_to(np.arange(n)[:, None], idx.shape)
        dist = np.full(idx.shape, np.inf)
        bearing = np.full(idx.shape, np.nan)
        fac = idx[found]
        dist[found], bearing[found] = _inverse(
            lon[rows[found]], lat[rows[found]], self.facilities.lon[fac], self.facilities.lat[fac]
        )
        rank = np.full(idx.shape, np.iinfo(np.int64).max)
        rank[found] = self._id_rank[fac]
        order = np.lexsort((rank, dist), axis=1)[:, :k_eff]
        return (
            np.take_along_axis(idx, order, axis=1),
            np.take_along_axis(dist, order, axis=1),
            np.take_along_axis(bearing, order, axis=1),
        )

    def _nearest_bulk(self, lon: np.ndarray, lat: np.ndarray, k: int) -> NearestLookup:
        """Many points: geodesics for the k nearest by chord, a wider re-rank only where needed.

        The kd-tree gives the k + 1 nearest by chord. When the (k + 1)-th lies beyond
        ``g_k / (m R)`` (``g_k`` the largest geodesic among the first k), no facility outside
        the first k can tie or beat them on the ellipsoid, so their geodesics, sorted by
        (distance, id), are the answer. The few other rows take :meth:`_rerank_wide`.
        """
        assert self._tree is not None
        n = lon.size
        k_eff = min(k, self._n)
        width = min(self._n, k_eff + 1)
        xyz = unit_xyz(lon, lat)
        chords, idx = self._tree.query(xyz, k=width, workers=_KD_WORKERS)
        chords, idx = chords.reshape(n, width), idx.reshape(n, width)
        first = np.ascontiguousarray(idx[:, :k_eff])
        dist, bearing = self._geodesics(lon, lat, first)
        if width > k_eff:
            g_k = dist.max(axis=1) if k_eff > 1 else dist[:, 0]
            angle_next = 2.0 * np.arcsin(np.minimum(chords[:, k_eff] * 0.5, 1.0))
            wide = np.flatnonzero(
                angle_next * _MIN_METRES_PER_RADIAN <= g_k * (1.0 + 1e-12) + _GEODESIC_EPS_M
            )
        else:
            wide = np.empty(0, dtype=np.intp)  # every facility is among the candidates
        first, dist, bearing = self._sort_rows(first, dist, bearing, k_eff)
        if wide.size:
            first[wide], dist[wide], bearing[wide] = self._rerank_wide(
                lon[wide], lat[wide], xyz[wide], k_eff
            )
        if k_eff == k:
            return NearestLookup(first.astype(np.int32), dist, bearing)
        out = _empty_lookup(n, k)
        out.index[:, :k_eff] = first
        out.distance_m[:, :k_eff] = dist
        out.bearing_deg[:, :k_eff] = bearing
        return out


class DynamicNearestIndex:
    """Exact k-nearest facilities that can change while the service runs.

    Facilities keep their row (``index`` in results) for the life of the index: a removed
    facility's row stays reserved, and adding the same id again reuses it. Mutations and
    queries hold one lock, so a query never sees a half-applied change.

    Parameters
    ----------
    fs
        The initial facilities (copied; the set itself is not changed).
    """

    def __init__(self, fs: FacilitySet) -> None:
        self.type = fs.type
        self._lock = threading.RLock()
        self._ids: list[str] = [str(i) for i in fs.ids]
        self._names: list[str | None] = (
            list(fs.names) if fs.names is not None else [None] * len(self._ids)
        )
        self._lon: list[float] = fs.lon.tolist()
        self._lat: list[float] = fs.lat.tolist()
        self._xyz: list[tuple[float, float, float]] = [
            tuple(row) for row in unit_xyz(fs.lon, fs.lat).tolist()
        ]
        self._active: list[bool] = [True] * len(self._ids)
        self._row_of: dict[str, int] = {fid: row for row, fid in enumerate(self._ids)}
        prop = rtree_index.Property()
        prop.dimension = 3
        self._tree = (
            rtree_index.Index(
                ((row, xyz + xyz, None) for row, xyz in enumerate(self._xyz)), properties=prop
            )
            if self._ids
            else rtree_index.Index(properties=prop)
        )
        self._count = len(self._ids)

    def __len__(self) -> int:
        return self._count

    @property
    def ids(self) -> np.ndarray:
        """Facility id of each row (removed rows included), as an object array."""
        with self._lock:
            return np.array(self._ids, dtype=object)

    @property
    def names(self) -> np.ndarray:
        """Facility name of each row (None where unnamed), as an object array."""
        with self._lock:
            return np.array(self._names, dtype=object)

    def is_active(self, facility_id: str) -> bool:
        """Whether the facility is currently in service."""
        with self._lock:
            row = self._row_of.get(facility_id)
            return row is not None and self._active[row]

    def location(self, row: int) -> tuple[float, float]:
        """(lon, lat) of a row as it is now."""
        with self._lock:
            return self._lon[row], self._lat[row]

    def remove(self, facility_id: str) -> None:
        """Take a facility out of service (KeyError when it is not in service)."""
        with self._lock:
            row = self._active_row(facility_id)
            self._tree.delete(row, self._xyz[row] + self._xyz[row])
            self._active[row] = False
            self._count -= 1

    def add(self, facility_id: str, lon: float, lat: float, name: str | None = None) -> int:
        """Put a facility in service at (lon, lat); returns its row.

        Raises ValueError when the id is already in service; InvalidCoordinatesError for
        unusable coordinates.
        """
        coords.require_lonlat(lon, lat)
        facility_id = str(facility_id)
        with self._lock:
            row = self._row_of.get(facility_id)
            if row is not None and self._active[row]:
                raise ValueError(f"facility '{facility_id}' of type '{self.type}' already exists")
            if row is None:
                row = len(self._ids)
                self._ids.append(facility_id)
                self._names.append(name)
                self._lon.append(0.0)
                self._lat.append(0.0)
                self._xyz.append((0.0, 0.0, 0.0))
                self._active.append(False)
                self._row_of[facility_id] = row
            elif name is not None:
                self._names[row] = name
            self._place(row, float(lon), float(lat))
            self._active[row] = True
            self._count += 1
            return row

    def move(self, facility_id: str, lon: float, lat: float) -> None:
        """Move a facility in service to (lon, lat) (KeyError when it is not in service)."""
        coords.require_lonlat(lon, lat)
        with self._lock:
            row = self._active_row(facility_id)
            self._tree.delete(row, self._xyz[row] + self._xyz[row])
            self._place(row, float(lon), float(lat))

    def _active_row(self, facility_id: str) -> int:
        row = self._row_of.get(str(facility_id))
        if row is None or not self._active[row]:
            raise KeyError(f"no facility '{facility_id}' of type '{self.type}' in service")
        return row

    def _place(self, row: int, lon: float, lat: float) -> None:
        xyz = tuple(unit_xyz(np.array([lon]), np.array([lat]))[0].tolist())
        self._lon[row], self._lat[row], self._xyz[row] = lon, lat, xyz
        self._tree.insert(row, xyz + xyz)

    def nearest(self, lon: np.ndarray, lat: np.ndarray, k: int) -> NearestLookup:
        """The k nearest facilities in service of each point by geodesic distance.

        Parameters
        ----------
        lon, lat
            Query points (valid EPSG:4326 coordinates).
        k
            How many facilities per point.

        Returns
        -------
        NearestLookup
            (n, k) arrays of rows, metres and bearings, sorted by distance then id.
        """
        lon_a, lat_a = _as_points(lon, lat)
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        out = _empty_lookup(lon_a.size, k)
        points = unit_xyz(lon_a, lat_a).tolist()
        with self._lock:
            if self._count == 0:
                return out
            k_eff = min(k, self._count)
            for i, (x, y, z) in enumerate(points):
                ranked = self._rank_one(lon_a[i], lat_a[i], (x, y, z), k_eff)
                for col, (dist, _fid, row, az) in enumerate(ranked):
                    out.index[i, col] = row
                    out.distance_m[i, col] = dist
                    out.bearing_deg[i, col] = az
        return out

    def _chord(self, row: int, p: tuple[float, float, float]) -> float:
        q = self._xyz[row]
        return math.sqrt((q[0] - p[0]) ** 2 + (q[1] - p[1]) ** 2 + (q[2] - p[2]) ** 2)

    def _rank_one(
        self, lon: float, lat: float, p: tuple[float, float, float], k: int
    ) -> list[tuple[float, str, int, float]]:
        """(distance, id, row, bearing) of the k nearest, for one point (lock held)."""
        # rtree may return more than k on ties; the farthest of them bounds the k-th chord.
        first = list(self._tree.nearest(p + p, k))
        chord_k = max(self._chord(row, p) for row in first)
        limit = float(_chord_limit(chord_k))
        box = (p[0] - limit, p[1] - limit, p[2] - limit, p[0] + limit, p[1] + limit, p[2] + limit)
        inv = coords.GEOD.inv
        ranked = []
        for row in self._tree.intersection(box):
            if self._chord(row, p) <= limit:
                az, _, dist = inv(lon, lat, self._lon[row], self._lat[row])
                ranked.append((dist, self._ids[row], row, _bearing(az)))
        ranked.sort()
        return ranked[:k]
