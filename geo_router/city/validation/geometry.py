"""Geometry helpers of the validation gate: ids as text, projection to metres, GeoJSON locations."""

from __future__ import annotations

import json
import re
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_router.city.coords import get_transformer, local_utm

__all__ = [
    "POLYGONAL",
    "area_text",
    "areas_m2",
    "geojson",
    "geom_type_names",
    "geometry_array",
    "ids_as_str",
    "layer_utm",
    "point_geojson",
    "polygonal_parts",
    "reason_point",
    "to_utm",
]

POLYGONAL = ("Polygon", "MultiPolygon")

# shapely's is_valid_reason ends with the offending point: "Self-intersection[107.6 -6.9]"
_REASON_POINT = re.compile(r"\[\s*(-?[\d.eE+-]+)\s+(-?[\d.eE+-]+)")


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


def areas_m2(geoms: np.ndarray, utm: Any) -> np.ndarray:
    """Areas in square metres of lon/lat geometries, measured in ``utm``."""
    if len(geoms) == 0:
        return np.zeros(0)
    areas: np.ndarray = shapely.area(to_utm(np.asarray(geoms, dtype=object), utm))
    return areas


def layer_utm(geoms: np.ndarray) -> Any:
    """The local UTM CRS of a set of lon/lat geometries."""
    bounds = shapely.bounds(geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)])
    if len(bounds) == 0:
        return local_utm(0.0, 0.0)
    return local_utm(bounds[:, [0, 2]], bounds[:, [1, 3]])


def geom_type_names(geoms: np.ndarray) -> np.ndarray:
    """Geometry type name per feature; ``missing`` and ``empty`` for those."""
    names = np.array([g.geom_type if g is not None else "missing" for g in geoms], dtype=object)
    empty = ~shapely.is_missing(geoms) & shapely.is_empty(geoms)
    names[empty] = "empty"
    return names


def polygonal_parts(geoms: np.ndarray) -> np.ndarray:
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


def area_text(area_m2: float) -> str:
    """An area for messages: ``1,234.5`` above 1 m2, two significant digits below."""
    return f"{area_m2:,.1f}" if area_m2 >= 1 else f"{area_m2:.2g}"


def geojson(geom: Any) -> dict[str, Any] | None:
    """A lon/lat shapely geometry as a GeoJSON geometry dict (None for missing or empty)."""
    if geom is None or shapely.is_empty(geom):
        return None
    value: dict[str, Any] = json.loads(shapely.to_geojson(geom))
    return value


def point_geojson(lon: float, lat: float) -> dict[str, Any]:
    """A GeoJSON Point at (lon, lat)."""
    return {"type": "Point", "coordinates": [float(lon), float(lat)]}


def reason_point(reason: str) -> dict[str, Any] | None:
    """The point that shapely's validity reason names, as GeoJSON (None when it names none)."""
    match = _REASON_POINT.search(reason)
    if match is None:
        return None
    try:
        return point_geojson(float(match.group(1)), float(match.group(2)))
    except ValueError:
        return None
