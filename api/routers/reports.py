"""Report intake endpoints: ``/v1/reports`` (create, read, list, status, history).

Handlers are plain ``def``: each does one database transaction, which FastAPI runs in its
thread pool. The reporter's number is shown to admin keys (masked to intake keys) and to no
other role; its stored hash and ciphertext are never shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from api.deps import get_report_service, require_roles
from api.request_ids import request_id_of
from api.serialize import json_response
from geo_router.intake.reports.models import MAX_PAGE, Actor, ReportFilters, ReportInput
from geo_router.intake.reports.service import ReportService
from geo_router.store.schema import ReportStatus, Resolution

router = APIRouter(prefix="/v1/reports", tags=["reports"])

CREATE_ROLES = require_roles("intake")
READ_ROLES = require_roles("intake", "analyst")
UPDATE_ROLES = require_roles("intake")

Service = Annotated[ReportService, Depends(get_report_service)]
Filer = Annotated[Actor, Depends(CREATE_ROLES)]
Reader = Annotated[Actor, Depends(READ_ROLES)]
Updater = Annotated[Actor, Depends(UPDATE_ROLES)]


class StatusUpdate(BaseModel):
    """A status change: closing needs a resolution; only admins reopen."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: ReportStatus
    resolution: Resolution | None = None
    note: str | None = Field(None, max_length=2000)


@router.post(
    "",
    status_code=201,
    summary="File a report (routed and stored)",
    responses={202: {"description": "An emergency journaled while the database is down"}},
)
def create_report(
    body: ReportInput,
    request: Request,
    actor: Filer,
    service: Service,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Locate (point, address or registered caller), route, screen and store a report.

    Repeat the ``Idempotency-Key`` header with the same body to get the first answer back.
    Emergency categories are never rate limited; other reports from a number over its
    hourly limit get 429 with ``Retry-After``. While the database is unavailable an
    emergency is still routed and kept in the local journal: 202 with its id and status
    ``pending_store`` (stored when the database returns); other reports get 503 with
    ``Retry-After``.
    """
    filed = service.file(
        body, actor=actor, idempotency_key=idempotency_key, request_id=request_id_of(request.scope)
    )
    status = 202 if filed.pending else 201
    location = {"Location": f"/v1/reports/{filed.report.id}"}
    return json_response(filed.view, status, headers=location)


@router.get("", summary="List reports (filters, newest first)")
def list_reports(
    actor: Reader,
    service: Service,
    zone: Annotated[
        str | None, Query(description="layer:zone_id, e.g. kelurahan:3273010001")
    ] = None,
    category: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """Reports the caller may see; intake keys bound to a channel see only that channel."""
    filters = ReportFilters.parse(
        zone=zone,
        category=category,
        status=status,
        channel=channel,
        created_from=created_from,
        created_to=created_to,
        bbox=bbox,
        limit=limit,
        offset=offset,
    )
    return json_response(service.view_page(service.list(filters, actor=actor), actor))


@router.get("/{report_id}", summary="One report with its routing decision")
def get_report(report_id: str, actor: Reader, service: Service) -> Response:
    """The stored report; 404 for unknown ids and for another channel's reports."""
    return json_response(service.view(service.get(report_id, actor=actor), actor))


@router.patch("/{report_id}", summary="Change a report's status")
def update_report(
    report_id: str,
    body: StatusUpdate,
    actor: Updater,
    service: Service,
) -> Response:
    """open -> acknowledged -> in_progress -> closed (closing needs a resolution)."""
    report = service.update_status(
        report_id, body.status, resolution=body.resolution, note=body.note, actor=actor
    )
    return json_response(service.view(report, actor))


@router.get("/{report_id}/history", summary="Every status change of a report")
def report_history(report_id: str, actor: Reader, service: Service) -> Response:
    """Status changes, oldest first, with time and actor."""
    changes = service.history(report_id, actor=actor)
    return json_response({"report_id": report_id, "items": [c.to_dict() for c in changes]})
