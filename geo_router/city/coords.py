"""Coordinate checks, CRS conversion and metric helpers.

Every public function takes and returns GeoJSON order ``(lon, lat)`` in EPSG:4326. Metric
work goes through :data:`GEOD` (geodesic) or a local UTM projection (:func:`local_utm`);
distances are never computed in degrees.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyproj
from pyproj.exceptions import CRSError

from geo_router.errors import InvalidCoordinatesError, UnknownCRSError

__all__ = [
    "GEOD",
    "check_lonlat",
    "geodesic_inverse",
    "get_transformer",
    "local_utm",
    "require_lonlat",
    "to_lonlat",
]

#: The WGS84 ellipsoid, for geodesic distances and bearings.
GEOD = pyproj.Geod(ellps="WGS84")

_AXIS_HINT = " (is the order lat, lon? GeoJSON order is lon, lat)"


def _as_float(values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values as float64, plus masks of entries that are missing and that are not numbers."""
    arr = np.atleast_1d(np.asarray(values))
    if arr.dtype.kind in "fiu":
        out = arr.astype(np.float64, copy=False)
        return out, np.zeros(out.shape, bool), np.zeros(out.shape, bool)
    if arr.dtype.kind == "b":
        # booleans are numbers to numpy but never coordinates
        return np.full(arr.shape, np.nan), np.zeros(arr.shape, bool), np.ones(arr.shape, bool)
    series = pd.Series(arr.ravel(), dtype=object)
    missing = series.isna().to_numpy()
    is_bool = series.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(bool)
    numeric = pd.to_numeric(series.where(~is_bool, None), errors="coerce").to_numpy(np.float64)
    not_number = (np.isnan(numeric) & ~missing) | is_bool
    # a string "nan" parses as NaN: it is a NaN, not garbage
    text_nan = series.map(lambda v: isinstance(v, str) and v.strip().lower() == "nan").to_numpy(
        bool
    )
    not_number &= ~text_nan
    return numeric.reshape(arr.shape), missing.reshape(arr.shape), not_number.reshape(arr.shape)


def _axis_reasons(
    name: str, values: Any, limit: float, hint: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Per-row reason (or None) for one axis; returns (float values, bad mask, reasons)."""
    num, missing, not_number = _as_float(values)
    is_nan = np.isnan(num) & ~missing & ~not_number
    is_inf = np.isinf(num)
    with np.errstate(invalid="ignore"):
        out_of_range = np.isfinite(num) & (np.abs(num) > limit)
    bad = missing | not_number | is_nan | is_inf | out_of_range
    reasons: list[str | None] = [None] * num.size
    for i in np.flatnonzero(bad):  # only the bad rows: the message needs each value
        if missing[i]:
            reasons[i] = f"{name} is missing"
        elif not_number[i]:
            reasons[i] = f"{name} is not a number"
        elif is_nan[i]:
            reasons[i] = f"{name} is NaN"
        elif is_inf[i]:
            reasons[i] = f"{name} is infinite"
        elif name == "latitude":
            extra = _AXIS_HINT if hint is not None and hint[i] else ""
            reasons[i] = f"latitude {num[i]:g} is out of range [-90, 90]{extra}"
        else:
            reasons[i] = f"longitude {num[i]:g} out of range [-180, 180]"
    return num, bad, reasons


def check_lonlat(lon: Any, lat: Any) -> tuple[np.ndarray, list[str | None]]:
    """Check coordinate pairs row by row.

    Parameters
    ----------
    lon, lat
        Scalars or arrays (float or object; strings holding numbers are accepted).

    Returns
    -------
    valid : numpy.ndarray of bool
        True where the pair is usable.
    reasons : list of str or None
        Per row, why it is not usable (e.g. ``"latitude is NaN"``), None when valid.
    """
    lon_num, _, _ = _as_float(lon)
    lat_raw, _, _ = _as_float(lat)
    if lon_num.shape != lat_raw.shape:
        raise InvalidCoordinatesError(
            f"longitude and latitude have different lengths ({lon_num.size} vs {lat_raw.size})",
            detail={"field": "longitude"},
        )
    with np.errstate(invalid="ignore"):
        # a latitude that would be a fine longitude, next to a longitude that would be a fine
        # latitude, smells of swapped axes
        swap_hint = (np.abs(lat_raw) <= 180) & (np.abs(lon_num) <= 90)
    _, lon_bad, lon_reasons = _axis_reasons("longitude", lon, 180.0, None)
    _, lat_bad, lat_reasons = _axis_reasons("latitude", lat, 90.0, swap_hint.ravel())
    valid = ~(lon_bad | lat_bad).ravel()
    reasons: list[str | None] = [None] * valid.size
    for i in np.flatnonzero(~valid):
        parts = [r for r in (lon_reasons[i], lat_reasons[i]) if r is not None]
        reasons[i] = "; ".join(parts)
    return valid, reasons


def require_lonlat(lon: float, lat: float, *, row: int | None = None) -> tuple[float, float]:
    """Return one ``(lon, lat)`` pair as floats or raise :class:`InvalidCoordinatesError`.

    The message names ``row`` when given; ``detail`` holds ``row``, ``field`` and ``reason``.
    """
    lon_num, _, lon_reasons = _axis_reasons("longitude", [lon], 180.0, None)
    lat_raw, _, _ = _as_float([lat])
    hint = (np.abs(lat_raw) <= 180) & (np.abs(lon_num) <= 90)
    lat_num, _, lat_reasons = _axis_reasons("latitude", [lat], 90.0, hint)
    for field, reason in (("longitude", lon_reasons[0]), ("latitude", lat_reasons[0])):
        if reason is not None:
            prefix = f"row {row}: " if row is not None else ""
            raise InvalidCoordinatesError(
                f"{prefix}{reason}", detail={"row": row, "field": field, "reason": reason}
            )
    return float(lon_num[0]), float(lat_num[0])


def _crs_key(crs: Any) -> str:
    """A hashable text for a CRS given as text, EPSG int or pyproj.CRS."""
    if isinstance(crs, pyproj.CRS):
        return crs.to_wkt()
    return str(crs).strip()


@lru_cache(maxsize=64)
def _parse_crs(key: str) -> pyproj.CRS:
    """Parse a CRS (cached), mapping pyproj's error to :class:`UnknownCRSError`."""
    try:
        return pyproj.CRS.from_user_input(int(key) if key.isdigit() else key)
    except CRSError as exc:
        raise UnknownCRSError(f"unknown CRS {key!r}: {exc}", detail={"crs": key}) from exc


def _is_lonlat_wgs84(crs: pyproj.CRS) -> bool:
    """Whether the CRS is EPSG:4326 or OGC:CRS84 (axis order is handled by always_xy)."""
    return crs.to_epsg() == 4326 or crs.equals(pyproj.CRS.from_user_input("OGC:CRS84"))


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> pyproj.Transformer:
    """Cached always-xy transformer between two CRS keys."""
    return pyproj.Transformer.from_crs(_parse_crs(src), _parse_crs(dst), always_xy=True)


def get_transformer(src: Any, dst: Any) -> pyproj.Transformer:
    """A cached ``always_xy`` transformer from ``src`` to ``dst`` (text, EPSG int or CRS).

    Raises
    ------
    UnknownCRSError
        When pyproj does not know one of them.
    """
    return _transformer(_crs_key(src), _crs_key(dst))


def to_lonlat(x: Any, y: Any, crs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinates from ``crs`` to ``(lon, lat)`` EPSG:4326 arrays.

    ``x`` is easting/longitude, ``y`` northing/latitude, whatever the CRS's declared axis order.
    EPSG:4326 and OGC:CRS84 pass through unchanged.

    Raises
    ------
    UnknownCRSError
        When pyproj does not know ``crs``.
    """
    key = _crs_key(crs)
    xs = np.atleast_1d(np.asarray(x, dtype=np.float64))
    ys = np.atleast_1d(np.asarray(y, dtype=np.float64))
    if _is_lonlat_wgs84(_parse_crs(key)):
        return xs.copy(), ys.copy()
    lon, lat = _transformer(key, "EPSG:4326").transform(xs, ys)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def local_utm(lon: Any, lat: Any) -> pyproj.CRS:
    """The UTM zone CRS (north or south) of a representative point of the coordinates.

    The representative point is the centre of the bounds of the finite coordinates, so a
    city layer gets the zone of its middle.
    """
    lons = np.asarray(lon, dtype=np.float64).ravel()
    lats = np.asarray(lat, dtype=np.float64).ravel()
    ok = np.isfinite(lons) & np.isfinite(lats)
    if not ok.any():
        raise InvalidCoordinatesError(
            "no finite coordinates to choose a UTM zone from", detail={"field": "longitude"}
        )
    mid_lon = (lons[ok].min() + lons[ok].max()) / 2.0
    mid_lat = (lats[ok].min() + lats[ok].max()) / 2.0
    zone = int(np.clip(np.floor((mid_lon + 180.0) / 6.0) + 1, 1, 60))
    return pyproj.CRS.from_epsg((32600 if mid_lat >= 0 else 32700) + zone)


def geodesic_inverse(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic distance (metres) and initial bearing (degrees in [0, 360), clockwise from north).

    Arguments broadcast against each other like numpy arrays.
    """
    a, b, c, d = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (lon1, lat1, lon2, lat2))
    )
    az12, _, dist = GEOD.inv(a.ravel(), b.ravel(), c.ravel(), d.ravel())
    bearing = np.mod(np.asarray(az12, dtype=np.float64), 360.0)
    bearing[bearing >= 360.0] = 0.0  # -1e-17 mod 360 rounds to 360
    return (
        np.asarray(dist, dtype=np.float64).reshape(a.shape),
        bearing.reshape(a.shape),
    )
