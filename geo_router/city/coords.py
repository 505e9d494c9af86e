"""Coordinate checks, CRS conversion and metric helpers.

Every public function takes and returns GeoJSON order ``(lon, lat)`` in EPSG:4326. Metric
work goes through :data:`GEOD` (geodesic) or a local UTM projection (:func:`local_utm`);
distances are never computed in degrees.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pyproj
from pydantic import BeforeValidator
from pyproj.exceptions import CRSError

from geo_router.errors import InputError, InvalidCoordinatesError, UnknownCRSError

__all__ = [
    "AXIS_NAMES",
    "GEOD",
    "JSON_NUMBER_TYPES",
    "Coordinate",
    "as_float_array",
    "box_problem",
    "check_lonlat",
    "decimal_number",
    "geodesic_inverse",
    "get_transformer",
    "json_number",
    "local_utm",
    "parse_bbox",
    "require_lonlat",
    "swap_plausible",
    "to_lonlat",
]

#: The WGS84 ellipsoid, for geodesic distances and bearings.
GEOD = pyproj.Geod(ellps="WGS84")

_AXIS_HINT = " (is the order lat, lon? GeoJSON order is lon, lat)"

#: The axis names messages use by default; callers with other field names pass theirs.
AXIS_NAMES = ("longitude", "latitude")

#: Scalar types the range check takes without numpy (``bool`` is deliberately absent).
_PLAIN_NUMBERS = (float, int, np.float64, np.float32, np.int64, np.int32)


#: The Python types a JSON number parses to (``bool``, a subclass of int, deliberately not).
JSON_NUMBER_TYPES = frozenset({float, int})

#: Decimal numbers as text: ASCII digits, one optional sign, point and exponent. Python's
#: float() also takes "1_0", "nan", "infinity" and non-ASCII digits, none of them coordinates.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def json_number(value: Any, field: str) -> float:
    """A JSON number as float: the one reader of numbers in JSON bodies.

    Strings, booleans (Python and numpy would take ``true`` for 1) and null are refused
    with an :class:`InputError` naming ``field``; the range is checked elsewhere
    (:func:`require_lonlat`).
    """
    if type(value) not in JSON_NUMBER_TYPES:
        raise InputError(
            f"{field} must be a number, got {type(value).__name__}",
            detail={"field": field, "reason": "not a number"},
        )
    return float(value)


def _coordinate(value: Any) -> float:
    """:func:`json_number` for pydantic (which turns a ValueError into a field error)."""
    try:
        return json_number(value, "a coordinate")
    except InputError as exc:
        raise ValueError(exc.message) from None


#: A coordinate field of a pydantic model: read by :func:`json_number`, then a float
#: (pydantic alone would take ``true`` as 1.0 and ``"107.6"`` as 107.6).
Coordinate = Annotated[float, BeforeValidator(_coordinate)]


def decimal_number(text: str) -> float | None:
    """A number written as text (query strings, forms): the one reader of numbers in text.

    Only the decimal grammar (``-6.9``, ``107``, ``1e-3``; surrounding spaces allowed) is
    read; anything else, "1_0", "nan", "inf" and non-ASCII digits included, gives None.
    A number too large for a float reads as infinity, which the range check refuses.
    """
    text = text.strip(" \t\r\n")
    if _DECIMAL.fullmatch(text) is None:
        return None
    return float(text)


def as_float_array(values: Any) -> np.ndarray:
    """Values as a 1-D float64 array, NaN where they are not numbers (booleans included)."""
    return _as_float(values)[0].ravel()


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


def swap_plausible(lon: Any, lat: Any) -> np.ndarray:
    """Where the pair read the other way round, (lat, lon), would be in range.

    The one axis-swap test: a latitude that would be a fine longitude next to a longitude
    that would be a fine latitude smells of swapped axes. Error messages hint at it; the
    router also checks whether the swapped point lies in the city.
    """
    with np.errstate(invalid="ignore"):
        return np.asarray((np.abs(lat) <= 180.0) & (np.abs(lon) <= 90.0), dtype=bool)


def _axis_reasons(
    name: str, values: Any, limit: float, hint: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Per-row reason (or None) for one axis; returns (float values, bad mask, reasons)."""
    num, missing, not_number = _as_float(values)
    num, missing, not_number = num.ravel(), missing.ravel(), not_number.ravel()
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
        else:
            extra = _AXIS_HINT if hint is not None and hint[i] else ""
            reasons[i] = f"{name} {num[i]:g} is out of range [-{limit:g}, {limit:g}]{extra}"
    return num, bad, reasons


def _problems(
    lon: Any, lat: Any, names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None], list[str | None]]:
    """(lon, lat as floats, valid mask, lon reasons, lat reasons) of coordinate pairs."""
    lon_num, _, _ = _as_float(lon)
    lat_raw, _, _ = _as_float(lat)
    if lon_num.shape != lat_raw.shape:
        raise InvalidCoordinatesError(
            f"{names[0]} and {names[1]} have different lengths ({lon_num.size} vs {lat_raw.size})",
            detail={"field": names[0]},
        )
    hint = swap_plausible(lon_num, lat_raw).ravel()
    lon_f, lon_bad, lon_reasons = _axis_reasons(names[0], lon, 180.0, None)
    lat_f, lat_bad, lat_reasons = _axis_reasons(names[1], lat, 90.0, hint)
    return lon_f, lat_f, ~(lon_bad | lat_bad), lon_reasons, lat_reasons


def check_lonlat(
    lon: Any, lat: Any, *, names: tuple[str, str] = AXIS_NAMES
) -> tuple[np.ndarray, list[str | None]]:
    """Check coordinate pairs row by row: the one range check of the code base.

    Parameters
    ----------
    lon, lat
        Scalars or arrays (float or object; strings holding numbers are accepted, booleans
        are not numbers).
    names
        The axis names the reasons use.

    Returns
    -------
    valid : numpy.ndarray of bool
        True where the pair is usable: finite, lon in [-180, 180], lat in [-90, 90].
    reasons : list of str or None
        Per row, why it is not usable (e.g. ``"latitude is NaN"``), None when valid.
    """
    lon_a, lat_a = np.atleast_1d(np.asarray(lon)), np.atleast_1d(np.asarray(lat))
    if lon_a.dtype.kind in "fiu" and lat_a.dtype.kind in "fiu" and lon_a.shape == lat_a.shape:
        with np.errstate(invalid="ignore"):  # NaN fails the comparison, inf exceeds the range
            fine = bool((np.abs(lon_a) <= 180.0).all() and (np.abs(lat_a) <= 90.0).all())
        if fine:  # the usual batch: no per-row work
            return np.ones(lon_a.size, dtype=bool), [None] * lon_a.size
    _, _, valid, lon_reasons, lat_reasons = _problems(lon, lat, names)
    reasons: list[str | None] = [None] * valid.size
    for i in np.flatnonzero(~valid):
        reasons[i] = "; ".join(r for r in (lon_reasons[i], lat_reasons[i]) if r is not None)
    return valid, reasons


def require_lonlat(
    lon: Any,
    lat: Any,
    *,
    row: int | None = None,
    names: tuple[str, str] = AXIS_NAMES,
    context: str = "",
) -> tuple[float, float]:
    """Return one ``(lon, lat)`` pair as floats or raise :class:`InvalidCoordinatesError`.

    The rules of :func:`check_lonlat`; plain in-range numbers return at once (hot path).
    The message names ``row`` when given (else starts with ``context``) and every problem
    of the pair; ``detail`` holds ``row``, ``field`` and ``reason`` of the first problem and
    ``errors``, every problem as ``{"field", "message"}``.
    """
    if (
        type(lon) in _PLAIN_NUMBERS
        and type(lat) in _PLAIN_NUMBERS
        and -180.0 <= lon <= 180.0  # NaN fails both comparisons
        and -90.0 <= lat <= 90.0
    ):
        return float(lon), float(lat)
    lon_f, lat_f, valid, lon_reasons, lat_reasons = _problems([lon], [lat], names)
    if valid[0]:
        return float(lon_f[0]), float(lat_f[0])
    problems = [
        (field, reason)
        for field, reason in zip(names, (lon_reasons[0], lat_reasons[0]), strict=True)
        if reason is not None
    ]
    prefix = f"row {row}: " if row is not None else context
    field, reason = problems[0]
    raise InvalidCoordinatesError(
        prefix + "; ".join(r for _, r in problems),
        detail={
            "row": row,
            "field": field,
            "reason": reason,
            "errors": [{"field": f, "message": r} for f, r in problems],
        },
    )


def box_problem(minlon: float, minlat: float, maxlon: float, maxlat: float) -> str | None:
    """Why a lon/lat box is unusable, or None: corners by :func:`check_lonlat`, min <= max."""
    valid, reasons = check_lonlat([minlon, maxlon], [minlat, maxlat])
    if not valid.all():
        return "; ".join(r for r in reasons if r is not None)
    if minlon > maxlon or minlat > maxlat:
        return "min must not exceed max (minlon,minlat,maxlon,maxlat)"
    return None


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` (or the 3-D ``minlon,minlat,minz,maxlon,maxlat,maxz``).

    The one bbox rule set: 4 (or 6) numbers, a box :func:`box_problem` accepts. None when
    absent; :class:`InputError` naming ``bbox`` and the problem otherwise.
    """
    if text is None:
        return None
    parts = [decimal_number(part) for part in text.split(",")]
    # a word among the numbers: "must be 4 numbers"
    values = [v for v in parts if v is not None] if None not in parts else []
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4:
        problem: str | None = "must be 4 numbers: minlon,minlat,maxlon,maxlat"
    else:
        problem = box_problem(*values)
    if problem is not None:
        raise InputError(f"bbox {text!r}: {problem}", detail={"field": "bbox", "reason": problem})
    return values[0], values[1], values[2], values[3]


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
