"""Liveness and readiness probes (public)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.deps import router_or_503
from api.errors import NotReadyError
from api.serialize import json_response

router = APIRouter(tags=["service"])


class Live(BaseModel):
    """The process is alive."""

    status: str


class Ready(BaseModel):
    """The service is ready: layers loaded, with their versions."""

    status: str
    city: str
    layers: dict[str, str]
    facilities: dict[str, str]
    loaded_at: Any = None


@router.get(
    "/livez",
    operation_id="livez",
    summary="Liveness: 200 while the process lives",
    responses={200: {"model": Live}},
)
async def livez() -> Response:
    """Answer 200 as long as the process runs (even while the city loads)."""
    return json_response({"status": "alive"})


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness: 503 until the layers are loaded, then their versions",
    responses={200: {"model": Ready}},
)
async def readyz(request: Request) -> Response:
    """200 with layer versions once the city is loaded and the store answers; else 503."""
    city = router_or_503(request)
    store = request.app.state.store
    if store is not None and not await run_in_threadpool(store.ping):
        raise NotReadyError("the database does not answer")
    snap = city.snapshot
    return json_response(
        {
            "status": "ready",
            "city": str(getattr(snap.profile, "name", "")),
            "layers": {name: str(layer.version) for name, layer in snap.layers.items()},
            "facilities": {name: str(fs.version) for name, fs in snap.facilities.items()},
            "loaded_at": getattr(snap, "loaded_at", None),
        }
    )
