"""Read one zone layer from disk and check it: ids, geometry types, CRS, validity.

A layer file is anything pyogrio reads (GeoJSON, GeoPackage, Shapefile, a zipped Shapefile,
KML, FlatGeobuf, ...) or GeoParquet. It is reprojected to EPSG:4326; a file without a CRS is
taken as lon/lat only when its bounds fit. Ids become strings (``12`` stays ``"12"``, a float
``12.0`` becomes ``"12"``). Invalid geometries refuse the layer, unless repair is asked, in
which case :func:`geo_router.city.validation.repair_layer` fixes them within its area limit
(0.1 % unless ``GEO_ROUTER_VALIDATION_MAX_REPAIR_CHANGE`` says otherwise).
Overlaps and gaps are not checked here (see :func:`geo_router.city.validation.validate_layer`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo_router.city import coords
from geo_router.city.validation import (
    RepairRecord,
    Thresholds,
    geometry_array,
    ids_as_str,
    repair_layer,
    validate_layer,
)
from geo_router.errors import LayerValidationError, ProfileError

__all__ = [
    "LayerSpecLike",
    "ZoneLayer",
    "layer_version",
    "load_layer",
    "make_layer",
    "read_layer_frame",
]

_LIST_LIMIT = 10


class LayerSpecLike(Protocol):
    """What :func:`load_layer` needs of a layer spec (``profile.LayerSpec`` has it)."""

    @property
    def name(self) -> str: ...  # noqa: D102 - read-only members of the protocol

    @property
    def path(self) -> Path: ...  # noqa: D102

    @property
    def id_field(self) -> str: ...  # noqa: D102

    @property
    def name_field(self) -> str | None: ...  # noqa: D102

    @property
    def parent(self) -> str | None: ...  # noqa: D102

    @property
    def repair(self) -> bool: ...  # noqa: D102


@dataclass(slots=True)
class ZoneLayer:
    """One zone layer in EPSG:4326, ready for indexing.

    ``ids``, ``names`` and ``geometries`` are parallel arrays; a zone's row index is its
    position in them.
    """

    name: str
    version: str  #: :func:`layer_version` of the source file
    ids: np.ndarray  #: object array of str
    names: np.ndarray | None  #: object array of str or None; None when the layer has no names
    geometries: np.ndarray  #: object array of shapely Polygon / MultiPolygon, EPSG:4326
    properties: pd.DataFrame  #: the other attribute columns, JSON-safe values, one row per zone
    parent: str | None
    source: Path
    repairs: list[RepairRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(min_lon, min_lat, max_lon, max_lat)`` of the whole layer."""
        return tuple(float(v) for v in shapely.total_bounds(self.geometries))  # type: ignore[return-value]


def _hash_files(paths: list[Path], root: Path | None) -> str:
    """First 12 hex of sha256 over the files' bytes (and their names relative to root)."""
    digest = hashlib.sha256()
    for path in paths:
        if root is not None:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def layer_version(path: Path | str) -> str:
    """The version of a layer file: first 12 hex of the sha256 of its bytes.

    A directory hashes every file in it (names included); a Shapefile ``.shp`` also hashes its
    sidecar files (``.dbf``, ``.prj``, ...), since they hold the ids and the CRS.
    """
    path = Path(path)
    if not path.exists():
        raise ProfileError(f"layer file not found: {path}", detail={"path": str(path)})
    if path.is_dir():
        return _hash_files(sorted(p for p in path.rglob("*") if p.is_file()), path)
    if path.suffix.lower() == ".shp":
        siblings = sorted(p for p in path.parent.glob(f"{path.stem}.*") if p.is_file())
        return _hash_files(siblings, path.parent)
    return _hash_files([path], None)


def _fits_lonlat(bounds: np.ndarray) -> bool:
    """Whether total bounds look like lon/lat degrees."""
    return coords.box_problem(*(float(v) for v in bounds)) is None


def _to_wgs84(gdf: gpd.GeoDataFrame, path: Path) -> gpd.GeoDataFrame:
    """Reproject to EPSG:4326; a frame without CRS is assumed lon/lat only if it fits."""
    if gdf.crs is None:
        bounds = gdf.total_bounds
        if len(gdf) and np.all(np.isfinite(bounds)) and not _fits_lonlat(bounds):
            raise ProfileError(
                f"{path}: the layer has no CRS and its bounds {np.round(bounds, 3).tolist()} "
                "are not lon/lat degrees; add a .prj / CRS to the file",
                detail={"path": str(path), "key": "crs"},
            )
        return gdf.set_crs(4326)
    if gdf.crs.to_epsg() == 4326:
        return gdf
    # CRS84 included: geopandas keeps x = lon, so this is a relabel, not a swap
    return gdf.to_crs(4326)


def read_layer_frame(path: Path | str) -> gpd.GeoDataFrame:
    """Read a layer file as a GeoDataFrame in EPSG:4326 (no checks besides the CRS).

    Raises
    ------
    ProfileError
        When the file is missing, unreadable, or has no CRS and is not lon/lat.
    """
    path = Path(path)
    if not path.exists():
        raise ProfileError(f"layer file not found: {path}", detail={"path": str(path)})
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".geoparquet")):
            gdf = gpd.read_parquet(path)
        elif name.endswith(".zip"):
            gdf = pyogrio.read_dataframe(f"/vsizip/{path.resolve()}")
        else:
            gdf = pyogrio.read_dataframe(path)
    except Exception as exc:  # pyogrio/arrow raise many kinds; all mean "cannot read"
        raise ProfileError(
            f"cannot read layer file {path}: {exc}", detail={"path": str(path)}
        ) from exc
    return _to_wgs84(gdf, path)


def _require_field(gdf: gpd.GeoDataFrame, field_name: str, key: str, path: Path) -> None:
    """Raise ProfileError naming the file, the key and the available columns."""
    if field_name not in gdf.columns:
        columns = [str(c) for c in gdf.columns if c != gdf.geometry.name]
        raise ProfileError(
            f"{path}: {key} {field_name!r} is not a column of the layer "
            f"(available: {', '.join(columns)})",
            detail={"path": str(path), "key": key, "field": field_name, "columns": columns},
        )


def _check_ids(ids: np.ndarray, path: Path, id_field: str) -> None:
    """Refuse missing and duplicate ids, naming the rows / ids."""
    missing = np.flatnonzero(np.array([i is None or i == "" for i in ids], dtype=bool))
    if len(missing):
        rows = missing[:_LIST_LIMIT].tolist()
        raise ProfileError(
            f"{path}: {len(missing)} feature(s) have no {id_field!r} (rows {rows})",
            detail={"path": str(path), "field": id_field, "rows": missing.tolist()},
        )
    series = pd.Series(ids)
    dupes = sorted(series[series.duplicated()].unique().tolist())
    if dupes:
        raise ProfileError(
            f"{path}: duplicate {id_field!r} values: {', '.join(dupes[:_LIST_LIMIT])}"
            + (f" and {len(dupes) - _LIST_LIMIT} more" if len(dupes) > _LIST_LIMIT else ""),
            detail={"path": str(path), "field": id_field, "duplicates": dupes},
        )


def _check_polygonal(geoms: np.ndarray, ids: np.ndarray, path: Path) -> None:
    """Refuse missing, empty and non-polygon geometries, naming the features."""
    type_ids = shapely.get_type_id(geoms)
    bad = ~np.isin(type_ids, (3, 6)) | shapely.is_empty(geoms)
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    found = [
        {
            "id": ids[r],
            "row": int(r),
            "geom_type": "missing" if geoms[r] is None else geoms[r].geom_type,
        }
        for r in rows
    ]
    listed = ", ".join(f"{f['id']} ({f['geom_type']})" for f in found[:_LIST_LIMIT])
    raise LayerValidationError(
        f"{path}: {len(rows)} feature(s) are not polygons: {listed}",
        detail={"path": str(path), "report": {"non_polygon": found}},
    )


def _json_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Attribute columns with plain values: numbers, bools, str or None."""
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in frame.columns:
        values = frame[column].reset_index(drop=True)
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            present = values.notna().to_numpy()
            text = np.full(len(values), None, dtype=object)
            text[present] = values[present].dt.strftime("%Y-%m-%dT%H:%M:%S").to_numpy(object)
            out[str(column)] = pd.Series(text, dtype=object)
        elif pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(
            values.dtype
        ):
            out[str(column)] = values
        else:
            as_obj = values.astype(object)
            present = as_obj.notna().to_numpy()
            text = np.full(len(as_obj), None, dtype=object)
            text[present] = as_obj[present].astype(str).to_numpy(dtype=object)
            out[str(column)] = pd.Series(text, dtype=object)
    return out


def _repair_or_refuse(
    gdf: gpd.GeoDataFrame, id_field: str, path: Path, repair: bool
) -> tuple[gpd.GeoDataFrame, list[RepairRecord]]:
    """Repair invalid geometries if asked, else refuse the layer with per-feature reasons."""
    geoms = geometry_array(gdf)
    if shapely.is_valid(geoms).all():
        return gdf, []
    if repair:
        limit = Thresholds.from_settings().max_repair_change
        return repair_layer(gdf, id_field=id_field, max_change=limit, source=path)
    report = validate_layer(gdf, id_field)
    listed = "; ".join(f"{f.id}: {f.reason}" for f in report.invalid[:_LIST_LIMIT])
    raise LayerValidationError(
        f"{path}: {len(report.invalid)} invalid geometr{'y' if len(report.invalid) == 1 else 'ies'}"
        f" ({listed}); set repair = true to fix them with make_valid",
        detail={"path": str(path), "report": report.to_dict()},
    )


def load_layer(spec: LayerSpecLike, *, repair: bool | None = None) -> ZoneLayer:
    """Read, reproject and check one zone layer.

    Parameters
    ----------
    spec
        A ``LayerSpec`` (``name, path, id_field, name_field, parent, repair``).
    repair
        Repair invalid geometries; None follows ``spec.repair``.

    Raises
    ------
    ProfileError
        Missing or unreadable file, missing id/name column, missing or duplicate ids, no CRS
        on a layer that is not lon/lat.
    LayerValidationError
        Non-polygon features, invalid geometries (without repair), or an unsafe repair.
    """
    path = Path(spec.path)
    gdf = read_layer_frame(path)
    _require_field(gdf, spec.id_field, "id_field", path)
    if spec.name_field is not None:
        _require_field(gdf, spec.name_field, "name_field", path)
    ids = ids_as_str(gdf[spec.id_field])
    _check_ids(ids, path, spec.id_field)
    gdf = gdf.reset_index(drop=True)
    gdf[gdf.geometry.name] = shapely.force_2d(geometry_array(gdf))
    _check_polygonal(geometry_array(gdf), ids, path)
    do_repair = spec.repair if repair is None else repair
    gdf, repairs = _repair_or_refuse(gdf, spec.id_field, path, bool(do_repair))
    names = ids_as_str(gdf[spec.name_field]) if spec.name_field is not None else None
    skip = {gdf.geometry.name, spec.id_field, spec.name_field}
    others = [c for c in gdf.columns if c not in skip]
    return ZoneLayer(
        name=spec.name,
        version=layer_version(path),
        ids=ids,
        names=names,
        geometries=geometry_array(gdf),
        properties=_json_safe(pd.DataFrame(gdf[others])),
        parent=spec.parent,
        source=path,
        repairs=repairs,
    )


def make_layer(
    name: str,
    ids: Any,
    geometries: Any,
    *,
    names: Any = None,
    parent: str | None = None,
    version: str = "memory",
) -> ZoneLayer:
    """Build a :class:`ZoneLayer` from arrays already in EPSG:4326 (tests, generated layers)."""
    ids_arr = ids_as_str(np.asarray(ids, dtype=object))
    geoms = np.asarray(geometries, dtype=object)
    return ZoneLayer(
        name=name,
        version=version,
        ids=ids_arr,
        names=None if names is None else ids_as_str(np.asarray(names, dtype=object)),
        geometries=geoms,
        properties=pd.DataFrame(index=pd.RangeIndex(len(ids_arr))),
        parent=parent,
        source=Path("<memory>"),
    )
