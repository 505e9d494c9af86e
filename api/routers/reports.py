"""Report intake endpoints: ``/v1/reports`` (create, read, list, status, history).

Handlers are plain ``def``: each does one database transaction, which FastAPI runs in its
thread pool. Phone fields (hash, ciphertext) are shown to admin and intake keys only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from api.deps import get_geocoder, get_router, get_secrets, get_settings, get_store, require_roles
from api.serialize import json_response
from geo_router.intake.registry import SubscriberRegistry
from geo_router.intake.reports import MAX_PAGE, ReportFilters, ReportInput, ReportService
from geo_router.settings import Settings

router = APIRouter(prefix="/v1/reports", tags=["reports"])

CREATE_ROLES = require_roles("intake")
READ_ROLES = require_roles("intake", "analyst")
UPDATE_ROLES = require_roles("intake")


async def get_report_service(
    city: Annotated[Any, Depends(get_router)],
    store: Annotated[Any, Depends(get_store)],
    secrets: Annotated[Any, Depends(get_secrets)],
    geocoder: Annotated[Any, Depends(get_geocoder)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> ReportService:
    """A ``ReportService`` over the app's store, router, secrets, registry and geocoder."""
    region = city.snapshot.profile.phone_region
    return ReportService(
        store.engine,
        city,
        secrets,
        registry=SubscriberRegistry(store, secrets, city, geocoder, region=region),
        geocoder=geocoder,
        region=region,
        rate_limit_per_hour=settings.rate_limit_per_hour,
        k=settings.default_k,
        idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
    )


Service = Annotated[ReportService, Depends(get_report_service)]


class StatusUpdate(BaseModel):
    """A status change: closing needs a resolution; only admins reopen."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: Literal["open", "acknowledged", "in_progress", "closed"]
    resolution: Literal["resolved", "duplicate", "false_report", "prank"] | None = None
    note: str | None = Field(None, max_length=2000)


@router.post("", status_code=201, summary="File a report (routed and stored)")
def create_report(
    body: ReportInput,
    actor: Annotated[Any, Depends(CREATE_ROLES)],
    service: Service,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Locate (point, address or registered caller), route, screen and store a report.

    Repeat the ``Idempotency-Key`` header with the same body to get the first answer back.
    Emergency categories are never rate limited; other reports from a number over its
    hourly limit get 429 with ``Retry-After``.
    """
    report = service.create(body, actor=actor, idempotency_key=idempotency_key)
    return json_response(
        report.view_for(actor, service.secrets),
        201,
        headers={"Location": f"/v1/reports/{report.id}"},
    )


@router.get("", summary="List reports (filters, newest first)")
def list_reports(
    actor: Annotated[Any, Depends(READ_ROLES)],
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
    return json_response(service.list(filters, actor=actor).view_for(actor, service.secrets))


@router.get("/{report_id}", summary="One report with its routing decision")
def get_report(
    report_id: str, actor: Annotated[Any, Depends(READ_ROLES)], service: Service
) -> Response:
    """The stored report; 404 for unknown ids and for another channel's reports."""
    return json_response(service.get(report_id, actor=actor).view_for(actor, service.secrets))


@router.patch("/{report_id}", summary="Change a report's status")
def update_report(
    report_id: str,
    body: StatusUpdate,
    actor: Annotated[Any, Depends(UPDATE_ROLES)],
    service: Service,
) -> Response:
    """open -> acknowledged -> in_progress -> closed (closing needs a resolution)."""
    report = service.update_status(
        report_id, body.status, resolution=body.resolution, note=body.note, actor=actor
    )
    return json_response(report.view_for(actor, service.secrets))


@router.get("/{report_id}/history", summary="Every status change of a report")
def report_history(
    report_id: str, actor: Annotated[Any, Depends(READ_ROLES)], service: Service
) -> Response:
    """Status changes, oldest first, with time and actor."""
    changes = service.history(report_id, actor=actor)
    return json_response({"report_id": report_id, "items": [c.to_dict() for c in changes]})
