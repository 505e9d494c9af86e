"""Caller registry endpoints: ``/v1/subscribers`` (register, read, list, change, delete, import).

An intake key may only register; everything else here is admin only.

Handlers are plain ``def`` (one database transaction each, run in FastAPI's thread pool),
except the import, which reads the upload first. Phone numbers are masked unless the caller
is an admin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.auth import Principal
from api.deps import get_subscriber_service, require_roles
from api.errors import PROBLEM_TYPE_BASE, problem_body, problem_response, request_id_of
from api.serialize import json_response
from geo_router.city.coords import Coordinate
from geo_router.errors import InputError
from geo_router.intake.subscribers.csv_import import ImportSummary
from geo_router.intake.subscribers.models import MAX_PAGE
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.store.schema import SubscriberLocationSource, VerificationStatus

router = APIRouter(prefix="/v1/subscribers", tags=["subscribers"])

#: Least privilege: an intake key registers a caller (and looks one up, ``/v1/callers``);
#: listing, reading by id, changing, deleting and importing the registry are admin only.
REGISTER_ROLES = require_roles("intake")  # admin always passes
REGISTRY_ROLES = require_roles("admin")
IMPORT_ROLES = require_roles("admin")

Registry = Annotated[SubscriberService, Depends(get_subscriber_service)]


def is_admin(principal: Principal) -> bool:
    """Whether the caller may see full phone numbers."""
    return getattr(principal, "role", None) == "admin"


def duplicate_problem(exc: InputError, request: Request) -> Response:
    """409 for a phone number that is already registered."""
    body = problem_body(
        409,
        exc.message,
        type_uri=PROBLEM_TYPE_BASE + "duplicate-phone",
        title="Conflict",
        instance=request.url.path,
        request_id=request_id_of(request),
        errors=[{"field": "phone", "message": "already registered"}],
        extra={"code": "duplicate_phone"},
    )
    return problem_response(body)


def _is_duplicate(exc: InputError) -> bool:
    return exc.detail.get("code") == "duplicate_phone"


# --- schemas (OpenAPI and body validation) --------------------------------------------------


class LonLat(BaseModel):
    """A location in EPSG:4326, GeoJSON order."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lon: Coordinate = Field(examples=[107.6191])
    lat: Coordinate = Field(examples=[-6.9175])


class SubscriberCreate(BaseModel):
    """Register a caller: a phone number and a location or a geocodable address."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "phone": "0812-3456-7890",
                    "name": "Siti Rahma",
                    "address": "Jalan Aceh 12",
                    "location": {"lon": 107.6191, "lat": -6.9175},
                    "verification_status": "verified",
                    "verification_method": "callback",
                    "consent_at": "2024-05-01T08:00:00Z",
                }
            ]
        },
    )

    phone: str = Field(max_length=64, description="Any common format; stored as E.164.")
    name: str | None = Field(None, max_length=200)
    address: str | None = Field(None, max_length=500)
    location: LonLat | None = Field(None, description="Wins over the address when given.")
    verification_status: VerificationStatus = "unverified"
    verification_method: str | None = Field(None, max_length=64)
    consent_at: AwareDatetime | None = None


class SubscriberPatch(BaseModel):
    """Fields to change; ``location: null`` clears a given location (the address is geocoded)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"location": {"lon": 107.61, "lat": -6.91}}]},
    )

    phone: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=200)
    address: str | None = Field(None, max_length=500)
    location: LonLat | None = None
    verification_status: VerificationStatus | None = None
    verification_method: str | None = Field(None, max_length=64)
    consent_at: AwareDatetime | None = None


class SubscriberOut(BaseModel):
    """A registered caller; ``phone`` is masked (``+62812****7890``) unless you are an admin."""

    id: str
    phone: str
    name: str | None
    address: str | None
    lon: float | None
    lat: float | None
    location_source: SubscriberLocationSource | None
    geocode_confidence: float | None
    zones: dict[str, Any] = Field(description="Per layer, the zone resolved at registration.")
    responders: dict[str, Any] = Field(description="Per facility type, the nearest at that time.")
    verification_status: VerificationStatus
    verification_method: str | None
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime
    phone_revealed: bool


class SubscriberPage(BaseModel):
    """A page of subscribers."""

    items: list[SubscriberOut]
    total: int
    limit: int
    offset: int


class RowErrorOut(BaseModel):
    """One failing CSV row (the header is row 1)."""

    row: int
    field: str | None
    message: str


class ImportSummaryOut(BaseModel):
    """What an import did (or, with ``dry_run``, would do)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rows": 3,
                    "valid": 3,
                    "created": 3,
                    "skipped": 0,
                    "dry_run": False,
                    "committed": True,
                    "errors": [],
                    "ids": [
                        "q2V0m9N1cX8yLrT4bWfE5g",
                        "Z3kP0aQ7uV2sRt9xYb1NcA",
                        "8HfJ2kL0pQ9rS3tU4vW5xY",
                    ],
                }
            ]
        }
    )

    rows: int
    valid: int
    created: int
    skipped: int
    dry_run: bool
    committed: bool
    errors: list[RowErrorOut]
    ids: list[str]


_SUBSCRIBER_EXAMPLE = {
    "id": "q2V0m9N1cX8yLrT4bWfE5g",
    "phone": "+62812****7890",
    "name": "Siti Rahma",
    "address": "Jalan Aceh 12",
    "lon": 107.6191,
    "lat": -6.9175,
    "location_source": "given",
    "geocode_confidence": None,
    "zones": {"kelurahan": {"layer": "kelurahan", "zone_id": "3273010001", "status": "inside"}},
    "responders": {"fire_station": [{"facility_id": "FS-01", "distance_m": 1234.5}]},
    "verification_status": "verified",
    "verification_method": "callback",
    "consent_at": "2024-05-01T08:00:00Z",
    "created_at": "2024-05-01T08:01:00Z",
    "updated_at": "2024-05-01T08:01:00Z",
    "phone_revealed": False,
}


def _one(model: type[BaseModel], example: Any, description: str) -> dict[str, Any]:
    return {
        "model": model,
        "description": description,
        "content": {"application/json": {"example": example}},
    }


# --- handlers --------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    operation_id="create_subscriber",
    summary="Register a caller",
    response_class=Response,
    responses={
        201: _one(SubscriberOut, _SUBSCRIBER_EXAMPLE, "The new subscriber."),
        409: {"description": "The phone number is already registered (problem+json)."},
        422: {"description": "Malformed phone (with the reason), location or address."},
    },
)
def create_subscriber(
    body: SubscriberCreate,
    request: Request,
    registry: Registry,
    principal: Annotated[Any, Depends(REGISTER_ROLES)],
) -> Response:
    """Register a caller. Zones and nearest responders are resolved now and kept."""
    location = body.location
    try:
        sub = registry.create(
            body.phone,
            name=body.name,
            address=body.address,
            lon=location.lon if location else None,
            lat=location.lat if location else None,
            verification_status=body.verification_status,
            verification_method=body.verification_method,
            consent_at=body.consent_at,
            reveal=is_admin(principal),
        )
    except InputError as exc:
        if _is_duplicate(exc):
            return duplicate_problem(exc, request)
        raise
    return json_response(sub, 201, {"Location": f"/v1/subscribers/{sub.id}"})


@router.get(
    "",
    operation_id="list_subscribers",
    summary="List subscribers",
    response_class=Response,
    responses={
        200: _one(
            SubscriberPage,
            {"items": [_SUBSCRIBER_EXAMPLE], "total": 1, "limit": 50, "offset": 0},
            "A page of subscribers, oldest first.",
        )
    },
)
def list_subscribers(
    registry: Registry,
    principal: Annotated[Any, Depends(REGISTRY_ROLES)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """A page of subscribers, oldest first, with the total count."""
    return json_response(registry.page(limit, offset, reveal=is_admin(principal), actor=principal))


@router.post(
    "/import",
    operation_id="import_subscribers",
    summary="Import subscribers from CSV",
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": (
                        "phone,name,address,lon,lat\n0812-3456-7890,Siti,,107.6191,-6.9175\n"
                    ),
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
    responses={
        200: _one(
            ImportSummaryOut,
            ImportSummaryOut.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
            "Imported (or checked, with dry_run).",
        ),
        422: {"description": "Some rows failed: nothing imported; the summary names them."},
    },
)
async def import_subscribers(
    request: Request,
    registry: Registry,
    _principal: Annotated[Any, Depends(IMPORT_ROLES)],
    dry_run: Annotated[bool, Query(description="Check every row, write nothing.")] = False,
    skip_invalid: Annotated[
        bool, Query(description="Import the valid rows even when others fail.")
    ] = False,
) -> Response:
    """Register callers from CSV (``phone,name,address,lon,lat``), all rows or none.

    Send the CSV as the body (``text/csv``) or as the ``file`` field of a multipart form.
    """
    data = await _upload(request)
    summary: ImportSummary = await run_in_threadpool(
        registry.import_csv, data, dry_run=dry_run, skip_invalid=skip_invalid
    )
    if summary.errors and not summary.committed and not dry_run:
        return _import_problem(summary, request)
    return json_response(summary)


async def _upload(request: Request) -> bytes:
    """The CSV bytes of an import: multipart ``file`` field, or the raw body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError(
                "the multipart form needs a 'file' field holding the CSV",
                detail={"field": "file", "reason": "missing"},
            )
        return await upload.read()
    body = await request.body()
    if not body:
        raise InputError(
            "send the CSV as the request body (text/csv) or a multipart 'file' field",
            detail={"field": "file", "reason": "empty"},
        )
    return body


def _import_problem(summary: ImportSummary, request: Request) -> Response:
    """422 naming the failing rows; the summary rides along."""
    body = problem_body(
        422,
        f"{len(summary.errors)} row(s) failed; nothing was imported "
        "(fix them, or retry with skip_invalid=true)",
        type_uri=PROBLEM_TYPE_BASE + "import-rows",
        instance=request.url.path,
        request_id=request_id_of(request),
        errors=[
            {"field": f"row {e.row}" + (f".{e.field}" if e.field else ""), "message": e.message}
            for e in summary.errors
        ],
        extra={"summary": summary},
    )
    return problem_response(body)


@router.get(
    "/{subscriber_id}",
    operation_id="get_subscriber",
    summary="Get a subscriber",
    response_class=Response,
    responses={200: _one(SubscriberOut, _SUBSCRIBER_EXAMPLE, "The subscriber.")},
)
def get_subscriber(
    subscriber_id: str,
    registry: Registry,
    principal: Annotated[Any, Depends(REGISTRY_ROLES)],
) -> Response:
    """One subscriber by id (404 when unknown)."""
    return json_response(registry.get(subscriber_id, reveal=is_admin(principal), actor=principal))


@router.patch(
    "/{subscriber_id}",
    operation_id="update_subscriber",
    summary="Change a subscriber",
    response_class=Response,
    responses={
        200: _one(SubscriberOut, _SUBSCRIBER_EXAMPLE, "The changed subscriber."),
        409: {"description": "The new phone number belongs to another subscriber."},
    },
)
def update_subscriber(
    subscriber_id: str,
    body: SubscriberPatch,
    request: Request,
    registry: Registry,
    principal: Annotated[Any, Depends(REGISTRY_ROLES)],
) -> Response:
    """Change fields; a new location or address re-resolves the zones and responders."""
    fields = {name: getattr(body, name) for name in body.model_fields_set if name != "location"}
    if "location" in body.model_fields_set:
        fields["lon"] = body.location.lon if body.location else None
        fields["lat"] = body.location.lat if body.location else None
    try:
        sub = registry.update(subscriber_id, reveal=is_admin(principal), **fields)
    except InputError as exc:
        if _is_duplicate(exc):
            return duplicate_problem(exc, request)
        raise
    return json_response(sub)


@router.delete(
    "/{subscriber_id}",
    status_code=204,
    operation_id="delete_subscriber",
    summary="Delete a subscriber",
    response_class=Response,
    responses={204: {"description": "Deleted."}},
)
def delete_subscriber(
    subscriber_id: str,
    registry: Registry,
    _principal: Annotated[Any, Depends(REGISTRY_ROLES)],
) -> Response:
    """Remove a subscriber and their personal data (404 when unknown)."""
    registry.delete(subscriber_id)
    return Response(status_code=204)


class SubscriberErase(BaseModel):
    """Whom to erase: a subscriber id or a phone number (in the body, never in the URL)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"phone": "0812-3456-7890"}, {"id": "q2V0m9N1cX8y"}]},
    )

    id: str | None = Field(None, min_length=1, max_length=64)
    phone: str | None = Field(None, min_length=1, max_length=40)


class ErasureOut(BaseModel):
    """What an erasure did; reports stay, without their personal fields."""

    subscriber_id: str | None = Field(description="The erased subscriber; None: not registered.")
    reports_erased: int
    idempotency_keys_deleted: int


@router.post(
    "/erase",
    operation_id="erase_subscriber",
    summary="Erase a subscriber and every trace of their number (data subject request)",
    response_class=Response,
    responses={
        200: _one(
            ErasureOut,
            {"subscriber_id": "q2V0m9N1cX8y", "reports_erased": 2, "idempotency_keys_deleted": 1},
            "Erased (again: nothing left, zero counts).",
        ),
        404: {"description": "No subscriber with this id."},
    },
)
def erase_subscriber(
    body: SubscriberErase,
    registry: Registry,
    _principal: Annotated[Any, Depends(REGISTRY_ROLES)],
) -> Response:
    """Delete the subscriber (by ``id`` or ``phone``) with its sealed fields, and erase the
    number, its HMAC, the home point and the free text of every report from that number;
    the reports stay for statistics by zone. Erasing by number also covers the reports of
    a number that is not registered.
    """
    erased = registry.erase(subscriber_id=body.id, phone=body.phone)
    return json_response(
        {
            "subscriber_id": erased.subscriber_id,
            "reports_erased": erased.reports.reports,
            "idempotency_keys_deleted": erased.reports.idempotency_keys,
        }
    )
