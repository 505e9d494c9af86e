"""Service information: the loaded city, its versions, categories, library versions."""

from __future__ import annotations

import platform
from typing import Any

import fastapi
import numpy as np
import pyproj
import shapely
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.responses import Response

import geo_router
from api.deps import require_roles, router_or_503
from api.schemas import CategoryOut
from api.serialize import json_response

router = APIRouter(tags=["service"])


class LayerInfo(BaseModel):
    """A loaded zone layer or facility set."""

    version: str
    count: int


class Info(BaseModel):
    """What the service is serving."""

    city: str
    layers: dict[str, LayerInfo]
    facilities: dict[str, LayerInfo]
    categories: list[CategoryOut]
    loaded_at: str | None
    storage: str | None
    versions: dict[str, str]


def library_versions() -> dict[str, str]:
    """Versions of geo_router and the libraries that decide its answers."""
    return {
        "geo_router": geo_router.__version__,
        "shapely": shapely.__version__,
        "geos": shapely.geos_version_string,
        "pyproj": pyproj.__version__,
        "proj": pyproj.proj_version_str,
        "numpy": np.__version__,
        "fastapi": fastapi.__version__,
        "python": platform.python_version(),
    }


def _category_doc(cat: Any) -> dict[str, Any]:
    """A category as plain data (CategoryRoute or profile CategorySpec)."""
    return {
        "code": str(cat.code),
        "name": getattr(cat, "name", None),
        "agency": str(getattr(cat, "agency", "")),
        "responders": list(getattr(cat, "responders", []) or []),
        "emergency": bool(getattr(cat, "emergency", False)),
    }


@router.get(
    "/v1/info",
    operation_id="get_info",
    summary="The loaded city: layers, facilities, categories, versions",
    responses={200: {"model": Info}},
)
async def get_info(
    request: Request,
    _principal: Any = Depends(require_roles("intake", "planner", "analyst")),
) -> Response:
    """City name, layer and facility versions and counts, categories, library versions."""
    snap = router_or_503(request).snapshot
    categories = snap.categories.values() if isinstance(snap.categories, dict) else snap.categories
    loaded_at = getattr(snap, "loaded_at", None)
    store = request.app.state.store
    return json_response(
        {
            "city": str(getattr(snap.profile, "name", "")),
            "layers": {
                name: {"version": str(layer.version), "count": len(layer.ids)}
                for name, layer in snap.layers.items()
            },
            "facilities": {
                name: {"version": str(fs.version), "count": len(fs.ids)}
                for name, fs in snap.facilities.items()
            },
            "categories": [_category_doc(c) for c in categories],
            "loaded_at": loaded_at.isoformat() if loaded_at is not None else None,
            "storage": getattr(store, "dialect", None),
            "versions": library_versions(),
        }
    )
