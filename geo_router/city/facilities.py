"""Responder facilities: a facility set (points with ids and names) loaded from a profile entry.

The nearest-responder indexes over a set live in :mod:`geo_router.city.nearest`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo_router.city import coords
from geo_router.city.profile import FacilitySpec
from geo_router.errors import ProfileError

__all__ = ["FacilitySet", "load_facilities"]


@dataclass(frozen=True, eq=False)
class FacilitySet:
    """One type of responder facility: ids, optional names, coordinates and attributes.

    Attributes
    ----------
    type
        The facility type of the profile (``fire_station``).
    version
        sha256 of the source file bytes, 12 hex digits.
    ids, names
        Object arrays of str (names may be None where missing; ``names`` None when no field).
    lon, lat
        float64 arrays, EPSG:4326.
    properties
        Every attribute column of the source, one row per facility.
    """

    type: str
    version: str
    ids: np.ndarray
    names: np.ndarray | None
    lon: np.ndarray
    lat: np.ndarray
    properties: pd.DataFrame

    def __len__(self) -> int:
        return len(self.ids)


def _file_version(path: Path) -> str:
    """sha256 of the file bytes, 12 hex digits (the same rule as zone layers)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def _require_columns(columns: Any, fields: dict[str, str | None], path: Path) -> None:
    """Each configured field must be a column of the file."""
    available = [str(c) for c in columns]
    for key, field in fields.items():
        if field is not None and field not in available:
            raise ProfileError(
                f"{path.name}: {key} '{field}' is not a column (columns: {', '.join(available)})",
                detail={"file": str(path), "key": key, "field": field},
            )


def _as_str_array(values: pd.Series) -> np.ndarray:
    """Object array of str, None where missing or blank."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values.tolist()):
        text = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
        text = str(text).strip() if text is not None else None
        out[i] = text or None
    return out


def _read_csv(spec: FacilitySpec) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """CSV facilities: attribute frame, raw ids, lon, lat (unparseable numbers -> NaN)."""
    if spec.lon_field is None or spec.lat_field is None:
        raise ProfileError(
            f"{spec.path.name}: facilities '{spec.type}': a CSV file needs lon_field and lat_field"
        )
    text_fields = {spec.id_field: str, spec.lon_field: str, spec.lat_field: str}
    if spec.name_field:
        text_fields[spec.name_field] = str
    header = pd.read_csv(spec.path, nrows=0).columns
    _require_columns(
        header,
        {
            "id_field": spec.id_field,
            "name_field": spec.name_field,
            "lon_field": spec.lon_field,
            "lat_field": spec.lat_field,
        },
        spec.path,
    )
    frame = pd.read_csv(spec.path, dtype=text_fields, keep_default_na=True)
    lon = pd.to_numeric(frame[spec.lon_field].str.strip(), errors="coerce").to_numpy(np.float64)
    lat = pd.to_numeric(frame[spec.lat_field].str.strip(), errors="coerce").to_numpy(np.float64)
    return frame, frame[spec.id_field].to_numpy(object), lon, lat


def _read_vector(spec: FacilitySpec) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Point files pyogrio reads (GeoJSON, GPKG, zipped shapefiles...), reprojected to 4326."""
    import geopandas as gpd
    import shapely

    try:
        gdf = gpd.read_file(spec.path, engine="pyogrio")
    except Exception as exc:  # pyogrio raises several unrelated classes for unreadable files
        raise ProfileError(f"{spec.path.name}: cannot read facilities: {exc}") from exc
    _require_columns(
        gdf.columns, {"id_field": spec.id_field, "name_field": spec.name_field}, spec.path
    )
    geoms = gdf.geometry.to_numpy()
    kinds = shapely.get_type_id(geoms)
    bad = np.flatnonzero((kinds != 0) | shapely.is_empty(geoms))
    if bad.size:
        row = int(bad[0])
        kind = "missing" if geoms[row] is None else geoms[row].geom_type
        raise ProfileError(
            f"{spec.path.name}: row {row} (id {gdf[spec.id_field].iloc[row]!r}): geometry must be "
            f"a Point, got {kind}",
            detail={"file": str(spec.path), "row": row},
        )
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        x, y = coords.to_lonlat(x, y, gdf.crs)
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    return frame, frame[spec.id_field].to_numpy(object), np.asarray(x, float), np.asarray(y, float)


def load_facilities(spec: FacilitySpec) -> FacilitySet:
    """Read one facility set of a city profile.

    Parameters
    ----------
    spec
        The profile's facility entry (path absolute).

    Returns
    -------
    FacilitySet
        Ids as str, coordinates in EPSG:4326, properties with every source column.

    Raises
    ------
    ProfileError
        Missing file or field, a missing or duplicate id, a non-point geometry, or a row with
        unusable coordinates (the row is named).
    """
    path = Path(spec.path)
    if not path.is_file():
        raise ProfileError(f"facilities '{spec.type}': file not found: {path}")
    is_csv = path.name.lower().endswith((".csv", ".csv.gz"))
    frame, raw_ids, lon, lat = _read_csv(spec) if is_csv else _read_vector(spec)
    frame = frame.reset_index(drop=True)
    ids = _as_str_array(pd.Series(raw_ids))
    _check_ids(ids, path, spec.id_field)
    valid, reasons = coords.check_lonlat(lon, lat)
    bad = np.flatnonzero(~np.asarray(valid, dtype=bool))
    if bad.size:
        row = int(bad[0])
        where = f"row {row} (line {row + 2})" if is_csv else f"row {row}"
        raise ProfileError(
            f"{path.name}: {where}, id {ids[row]!r}: unusable coordinates "
            f"({spec.lon_field or 'x'}={lon[row]}, {spec.lat_field or 'y'}={lat[row]}): "
            f"{reasons[row]}" + (f" (and {bad.size - 1} more rows)" if bad.size > 1 else ""),
            detail={"file": str(path), "rows": bad[:100].tolist()},
        )
    names = _as_str_array(frame[spec.name_field]) if spec.name_field else None
    return FacilitySet(
        type=spec.type,
        version=_file_version(path),
        ids=ids,
        names=names,
        lon=np.ascontiguousarray(lon, dtype=np.float64),
        lat=np.ascontiguousarray(lat, dtype=np.float64),
        properties=frame,
    )


def _check_ids(ids: np.ndarray, path: Path, id_field: str) -> None:
    """Ids must be present and unique."""
    missing = [i for i, value in enumerate(ids) if value is None]
    if missing:
        raise ProfileError(
            f"{path.name}: row {missing[0]}: {id_field} is empty"
            + (f" (and {len(missing) - 1} more rows)" if len(missing) > 1 else ""),
            detail={"file": str(path), "field": id_field, "rows": missing[:100]},
        )
    uniq, counts = np.unique(ids.astype(str), return_counts=True)
    dups = uniq[counts > 1]
    if dups.size:
        raise ProfileError(
            f"{path.name}: duplicate {id_field} {', '.join(map(repr, dups[:10].tolist()))}",
            detail={"file": str(path), "field": id_field, "duplicates": dups[:100].tolist()},
        )
