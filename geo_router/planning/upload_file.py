"""Read an uploaded layer file (bytes) into a GeoDataFrame in EPSG:4326, within limits.

The bytes go to a private temporary file named only by the format's suffix (never the
caller's file name), then :func:`geo_router.city.layers.read_layer_frame` reads and
reprojects it, as it does the profile's files. The size limit is checked before anything is
written, the vertex limit right after reading, before the validation gate's heavy work.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath

import geopandas as gpd
import numpy as np
import shapely

from geo_router.city.layers import read_layer_frame
from geo_router.errors import GeoRouterError, InputError, UploadTooLargeError

__all__ = [
    "SUFFIXES",
    "UnreadableUploadError",
    "UploadLimits",
    "check_size",
    "checksum_of",
    "read_upload",
    "suffix_of",
]

#: The formats an upload may be, by file name suffix.
SUFFIXES: tuple[str, ...] = (".geojson", ".json", ".gpkg", ".zip", ".kml", ".fgb")


class UnreadableUploadError(GeoRouterError):
    """The uploaded file cannot be read as a layer; the version is stored ``failed``."""


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """How large an uploaded layer may be."""

    max_bytes: int = 8 * 1024 * 1024
    max_vertices: int = 2_000_000

    @classmethod
    def from_settings(cls) -> UploadLimits:
        """The limits of ``GEO_ROUTER_LAYER_UPLOAD_MAX_*`` (defaults when unset)."""
        from geo_router.settings import validation_settings

        values = validation_settings()
        return cls(values.layer_upload_max_bytes, values.layer_upload_max_vertices)


def checksum_of(data: bytes) -> str:
    """A file's checksum: first 12 hex of its sha256, as ``layers.layer_version`` of a file."""
    return hashlib.sha256(data).hexdigest()[:12]


def suffix_of(filename: str) -> str:
    """The format suffix of an uploaded file's name; 422 for a format not read here."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(
            f"cannot read a layer from a {suffix or 'nameless'} file: upload one of "
            f"{', '.join(SUFFIXES)} (a Shapefile zipped)",
            detail={"field": "file", "suffixes": list(SUFFIXES)},
        )
    return suffix


def check_size(size: int, limits: UploadLimits) -> None:
    """413 for a file over the size limit, before it is read."""
    if size > limits.max_bytes:
        raise UploadTooLargeError(
            f"the uploaded file has {size} bytes, more than the limit of {limits.max_bytes} "
            "(GEO_ROUTER_LAYER_UPLOAD_MAX_BYTES)",
            detail={"field": "file", "bytes": size, "limit": limits.max_bytes},
        )


def _check_vertices(gdf: gpd.GeoDataFrame, limits: UploadLimits) -> None:
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    vertices = int(shapely.get_num_coordinates(geoms).sum()) if len(geoms) else 0
    if vertices > limits.max_vertices:
        raise InputError(
            f"the uploaded layer has {vertices} vertices, more than the limit of "
            f"{limits.max_vertices} (GEO_ROUTER_LAYER_UPLOAD_MAX_VERTICES): simplify it",
            detail={"field": "file", "vertices": vertices, "limit": limits.max_vertices},
        )


def read_upload(data: bytes, filename: str, limits: UploadLimits) -> gpd.GeoDataFrame:
    """The uploaded layer in EPSG:4326.

    Raises
    ------
    UploadTooLargeError
        Over the size limit (413), before anything is read.
    InputError
        A format not read here, or over the vertex limit (422).
    UnreadableUploadError
        The file cannot be read as a layer (its version is stored ``failed``).
    """
    check_size(len(data), limits)
    suffix = suffix_of(filename)
    with tempfile.TemporaryDirectory(prefix="geo_router_upload_") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            gdf = read_layer_frame(path)
        except GeoRouterError as exc:
            reason = exc.message.replace(f"cannot read layer file {path}: ", "")
            reason = reason.replace(str(path), "the uploaded file")
            raise UnreadableUploadError(reason) from exc
    _check_vertices(gdf, limits)
    return gdf
