"""Zone layer versions for planners: ``/v1/layers/{layer}/versions`` (upload, list, show, retire).

An upload answers 202 as soon as the file is read and stored (``validating``, or ``failed``
when it cannot be read); the validation gate runs in a thread of its own, off the request
path, and ``GET .../versions/{v}`` shows the state and, once done, the report. Activation,
rollback and the diff are not here yet.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.auth import Principal
from api.deps import get_layer_versions, require_roles
from api.serialize import json_response
from geo_router.planning.upload_file import check_size
from geo_router.planning.versions import LayerVersions, PendingUpload
from geo_router.store.layer_versions_repo import LayerVersionRow

__all__ = ["router", "status_url", "version_view"]

log = logging.getLogger("geo_router.api")

router = APIRouter(prefix="/v1/layers", tags=["layers"])

PLANNERS = require_roles("planner")
Planner = Annotated[Principal, Depends(PLANNERS)]
Versions = Annotated[LayerVersions, Depends(get_layer_versions)]


class UploadAnswer(BaseModel):
    """The stored upload: its id (the ``{v}`` of every path), state and where to follow it."""

    id: str
    layer: str
    number: int
    state: str = Field(description="validating, staged, failed, active or retired")
    status_url: str


def status_url(row: LayerVersionRow) -> str:
    """Where a version's state and report are shown."""
    return f"/v1/layers/{row.layer}/versions/{row.id}"


def version_view(row: LayerVersionRow, *, report: bool = False) -> dict[str, Any]:
    """A version as JSON with its status URL (its validation report too when ``report``)."""
    return {**row.to_dict(report=report), "status_url": status_url(row)}


def _validate_in_background(versions: LayerVersions, pending: PendingUpload, who: Any) -> None:
    """Run the gate in a thread of its own; the version ends staged or failed."""

    def run() -> None:
        try:
            versions.finish_upload(pending, who)
        except Exception:  # logged; the version stays "validating" and says so
            log.exception("validating layer version %s failed", pending.version.id)

    name = f"layer-gate-{pending.version.id}"
    threading.Thread(target=run, name=name, daemon=False).start()


@router.post(
    "/{layer}/versions",
    status_code=202,
    summary="Upload a new version of a zone layer",
    responses={
        202: {"model": UploadAnswer, "description": "Stored; the gate runs (see status_url)."},
        413: {"description": "The file is over GEO_ROUTER_LAYER_UPLOAD_MAX_BYTES."},
        422: {"description": "A format not read, or over GEO_ROUTER_LAYER_UPLOAD_MAX_VERTICES."},
    },
)
async def upload_version(
    layer: str,
    who: Planner,
    versions: Versions,
    file: Annotated[
        UploadFile,
        File(description="GeoJSON, GeoPackage, zipped Shapefile, KML or FlatGeobuf."),
    ],
    note: Annotated[str | None, Form(max_length=2000, description="Why this version.")] = None,
) -> Response:
    """Store a new version of ``layer`` and validate it off the request path.

    Any CRS is reprojected to EPSG:4326. The answer names the version's ``id`` and its
    ``state``: ``validating`` until the gate is done (then ``staged``, with its findings,
    errors included), or ``failed`` when the file cannot be read.
    """
    versions.spec(layer)
    if file.size is not None:  # refused before the bytes are read
        check_size(file.size, versions.limits)
    data = await file.read()
    pending = await run_in_threadpool(
        versions.begin_upload, layer, data, file.filename or "", note, who
    )
    if pending.frame is not None:
        _validate_in_background(versions, pending, who)
    row = pending.version
    answer = UploadAnswer(
        id=row.id, layer=row.layer, number=row.number, state=row.state, status_url=status_url(row)
    )
    return json_response(answer.model_dump(), 202, headers={"Location": answer.status_url})


@router.get("/{layer}/versions", summary="A layer's versions and their history")
def list_versions(layer: str, _who: Planner, versions: Versions) -> Response:
    """Every version of ``layer`` (newest first) and every change of their states (who,
    when, from, to, note), oldest first."""
    rows = versions.list_versions(layer)
    events = versions.history(layer)
    return json_response(
        {
            "layer": layer,
            "versions": [version_view(r) for r in rows],
            "history": [e.to_dict() for e in events],
        }
    )


@router.get("/{layer}/versions/{v}", summary="A layer version: state and validation report")
def get_version(layer: str, v: str, _who: Planner, versions: Versions) -> Response:
    """The version ``v`` (the id its upload answered) with its validation report."""
    return json_response(version_view(versions.get_version(v, layer), report=True))


class RetireBody(BaseModel):
    """Why a version is retired."""

    note: str | None = Field(None, max_length=2000)


@router.post("/{layer}/versions/{v}/retire", summary="Retire a staged or inactive version")
def retire_version(
    layer: str, v: str, who: Planner, versions: Versions, body: RetireBody | None = None
) -> Response:
    """Retire version ``v``; retiring the only active version is refused (409)."""
    row = versions.retire(v, who, layer=layer, note=None if body is None else body.note)
    return json_response(version_view(row))
