"""OGC API - Features (part 1) read access to zone layers and facility sets.

Collection ids are the layer names and the facility types of the loaded city; features are
served as ``application/geo+json`` with id = zone / facility id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import orjson
import pandas as pd
import shapely
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from api.auth import Principal
from api.deps import require_roles, router_or_503
from api.route_input import parse_bbox
from api.serialize import GeoJSONResponse, geojson_response, json_response
from geo_router.city.router import Router
from geo_router.city.snapshot import CitySnapshot
from geo_router.errors import NotFoundError

router = APIRouter(tags=["collections"])

READ_ROLES = require_roles("intake", "planner", "analyst")
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GEOJSON = "application/geo+json"


# --- documentation schemas ------------------------------------------------------------------


class Link(BaseModel):
    """A hypermedia link."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class Extent(BaseModel):
    """Spatial extent in CRS84."""

    spatial: dict[str, Any]


class Collection(BaseModel):
    """One zone layer or facility set."""

    id: str
    title: str
    description: str
    kind: str
    itemType: str  # noqa: N815 - the OGC member name
    version: str
    count: int
    extent: Extent
    crs: list[str]
    links: list[Link]


class Collections(BaseModel):
    """All collections of the loaded city."""

    collections: list[Collection]
    links: list[Link]


class Feature(BaseModel):
    """A GeoJSON Feature."""

    type: str
    id: str
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    """A page of features."""

    type: str
    features: list[Feature]
    numberMatched: int  # noqa: N815 - the OGC member name
    numberReturned: int  # noqa: N815
    timeStamp: str  # noqa: N815
    links: list[Link]


@dataclass(slots=True)
class _Source:
    """A collection's data, normalised over zone layers and facility sets."""

    id: str
    kind: str
    version: str
    ids: np.ndarray
    names: Any
    properties: Any
    bbox: list[float]
    geometries: np.ndarray | None = None  # zone layers
    lon: np.ndarray = field(default_factory=lambda: np.empty(0))  # facility sets
    lat: np.ndarray = field(default_factory=lambda: np.empty(0))


# --- data access --------------------------------------------------------------------------


_SOURCES_CACHE: dict[int, tuple[Any, dict[str, _Source]]] = {}


def _sources(city: Router) -> dict[str, _Source]:
    """Every collection of the current snapshot, by id (built once per snapshot)."""
    snap = city.snapshot
    hit = _SOURCES_CACHE.get(id(snap))
    if hit is not None and hit[0] is snap:
        return hit[1]
    out = _build_sources(snap)
    _SOURCES_CACHE.clear()  # one live snapshot at a time: older ones may be freed
    _SOURCES_CACHE[id(snap)] = (snap, out)
    return out


def _build_sources(snap: CitySnapshot) -> dict[str, _Source]:
    """Normalise the snapshot's layers (first) and facility sets."""
    out: dict[str, _Source] = {}
    for name, layer in snap.layers.items():
        geoms = np.asarray(layer.geometries)
        bounds = shapely.total_bounds(geoms) if geoms.size else np.full(4, np.nan)
        out[name] = _Source(
            id=name,
            kind="zones",
            version=str(layer.version),
            ids=np.asarray(layer.ids),
            names=layer.names,
            properties=layer.properties,
            geometries=geoms,
            bbox=[float(v) for v in bounds],
        )
    for ftype, fs in snap.facilities.items():
        lon, lat = np.asarray(fs.lon, np.float64), np.asarray(fs.lat, np.float64)
        bbox = [lon.min(), lat.min(), lon.max(), lat.max()] if lon.size else [math.nan] * 4
        out.setdefault(
            ftype,
            _Source(
                id=ftype,
                kind="facilities",
                version=str(fs.version),
                ids=np.asarray(fs.ids),
                names=fs.names,
                properties=fs.properties,
                lon=lon,
                lat=lat,
                bbox=[float(v) for v in bbox],
            ),
        )
    return out


def _source(city: Router, collection_id: str) -> _Source:
    sources = _sources(city)
    src = sources.get(collection_id)
    if src is None:
        raise NotFoundError(
            f"no collection {collection_id!r}; known: {', '.join(sources)}",
            detail={"collection": collection_id},
        )
    return src


def _matching_rows(src: _Source, bbox: tuple[float, float, float, float] | None) -> np.ndarray:
    """Row indices of the features intersecting ``bbox`` (all rows without one)."""
    n = len(src.ids)
    if bbox is None:
        return np.arange(n)
    if src.geometries is not None:
        return np.flatnonzero(shapely.intersects(src.geometries, shapely.box(*bbox)))
    inside = (
        (src.lon >= bbox[0]) & (src.lon <= bbox[2]) & (src.lat >= bbox[1]) & (src.lat <= bbox[3])
    )
    return np.flatnonzero(inside)


def _property_records(props: Any, rows: np.ndarray) -> list[dict[str, Any]]:
    """Property dicts for ``rows`` with missing values as None."""
    if not isinstance(props, pd.DataFrame) or len(props.columns) == 0:
        return [{} for _ in rows]
    frame = props.iloc[rows]
    frame = frame.drop(columns=[c for c in frame.columns if c == "geometry"])
    frame = frame.astype(object).where(frame.notna(), None)
    records: list[dict[str, Any]] = frame.to_dict("records")
    return records


def _features(src: _Source, rows: np.ndarray) -> list[dict[str, Any]]:
    """GeoJSON features for ``rows``; geometries encoded by GEOS in one call."""
    geometry: list[Any]
    if src.geometries is not None:
        geoms = shapely.to_geojson(src.geometries[rows]) if rows.size else []
        geometry = [orjson.Fragment(g) if g is not None else None for g in geoms]
    else:
        geometry = [
            {"type": "Point", "coordinates": [x, y]}
            for x, y in zip(src.lon[rows].tolist(), src.lat[rows].tolist(), strict=True)
        ]
    ids = [str(v) for v in src.ids[rows].tolist()]
    names = (
        [
            None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            for v in np.asarray(src.names)[rows].tolist()
        ]
        if src.names is not None
        else [None] * len(ids)
    )
    records = _property_records(src.properties, rows)
    features = []
    for fid, name, geom, record in zip(ids, names, geometry, records, strict=True):
        record.update(id=fid, name=name, version=src.version)
        features.append({"type": "Feature", "id": fid, "geometry": geom, "properties": record})
    return features


def _collection(src: _Source, base: str) -> dict[str, Any]:
    """The collection document."""
    href = f"{base}/v1/collections/{src.id}"
    what = "zone layer" if src.kind == "zones" else "facility set"
    return {
        "id": src.id,
        "title": src.id.replace("_", " ").title(),
        "description": f"{what} {src.id!r}, version {src.version}",
        "kind": src.kind,
        "itemType": "feature",
        "version": src.version,
        "count": len(src.ids),
        "extent": {"spatial": {"bbox": [src.bbox], "crs": CRS84}},
        "crs": [CRS84],
        "links": [
            {"href": href, "rel": "self", "type": "application/json"},
            {"href": f"{href}/items", "rel": "items", "type": GEOJSON},
        ],
    }


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# --- endpoints ----------------------------------------------------------------------------


@router.get(
    "/v1/collections",
    operation_id="list_collections",
    summary="Zone layers and facility sets of the loaded city",
    responses={200: {"model": Collections}},
)
async def list_collections(
    request: Request, _principal: Principal = Depends(READ_ROLES)
) -> Response:
    """Every collection with its extent, version and links."""
    base = _base(request)
    docs = [_collection(src, base) for src in _sources(router_or_503(request)).values()]
    links = [{"href": f"{base}/v1/collections", "rel": "self", "type": "application/json"}]
    return json_response({"collections": docs, "links": links})


@router.get(
    "/v1/collections/{collection_id}",
    operation_id="get_collection",
    summary="One collection",
    responses={200: {"model": Collection}},
)
async def get_collection(
    request: Request, collection_id: str, _principal: Principal = Depends(READ_ROLES)
) -> Response:
    """A collection's description (404 for an unknown id)."""
    return json_response(
        _collection(_source(router_or_503(request), collection_id), _base(request))
    )


@router.get(
    "/v1/collections/{collection_id}/items",
    operation_id="list_items",
    summary="Features of a collection (bbox filter, paging)",
    response_class=GeoJSONResponse,
    responses={200: {"model": FeatureCollection}},
)
async def list_items(
    request: Request,
    collection_id: str,
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat (CRS84)", examples=["106.7,-6.3,106.9,-6.1"]
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    _principal: Principal = Depends(READ_ROLES),
) -> Response:
    """A page of features as a GeoJSON FeatureCollection with next/prev links."""
    src = _source(router_or_503(request), collection_id)
    rows = _matching_rows(src, parse_bbox(bbox))
    page = rows[offset : offset + limit]
    url = request.url
    links = [{"href": str(url), "rel": "self", "type": GEOJSON}]
    if offset + limit < rows.size:
        nxt = url.include_query_params(limit=limit, offset=offset + limit)
        links.append({"href": str(nxt), "rel": "next", "type": GEOJSON})
    if offset > 0:
        prev = url.include_query_params(limit=limit, offset=max(0, offset - limit))
        links.append({"href": str(prev), "rel": "prev", "type": GEOJSON})
    links.append(
        {
            "href": f"{_base(request)}/v1/collections/{src.id}",
            "rel": "collection",
            "type": "application/json",
        }
    )
    return geojson_response(
        {
            "type": "FeatureCollection",
            "features": _features(src, page),
            "numberMatched": int(rows.size),
            "numberReturned": int(page.size),
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "links": links,
        }
    )


@router.get(
    "/v1/collections/{collection_id}/items/{feature_id}",
    operation_id="get_item",
    summary="One feature by id",
    response_class=GeoJSONResponse,
    responses={200: {"model": Feature}},
)
async def get_item(
    request: Request,
    collection_id: str,
    feature_id: str,
    _principal: Principal = Depends(READ_ROLES),
) -> Response:
    """A single feature (404 for an unknown id)."""
    src = _source(router_or_503(request), collection_id)
    rows = np.flatnonzero(src.ids.astype(str) == feature_id)
    if rows.size == 0:
        raise NotFoundError(
            f"no feature {feature_id!r} in collection {collection_id!r}",
            detail={"collection": collection_id, "feature": feature_id},
        )
    feature = _features(src, rows[:1])[0]
    base = _base(request)
    feature["links"] = [
        {"href": str(request.url), "rel": "self", "type": GEOJSON},
        {
            "href": f"{base}/v1/collections/{src.id}",
            "rel": "collection",
            "type": "application/json",
        },
    ]
    return geojson_response(feature)
