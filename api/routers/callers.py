"""The call-taker's lookup: ``POST /v1/callers/lookup`` with ``{"phone": "..."}``.

The number travels in the body, never in the URL, so access logs and proxies do not record
it. The old ``GET /v1/callers/{phone}`` (``legacy_router``) is included only with
``GEO_ROUTER_LEGACY_CALLER_PATH=true`` and is marked deprecated; both answer through
:func:`_answer`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from api.auth import Principal
from api.deps import get_subscriber_service, require_roles
from api.serialize import json_response
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.store.schema import SubscriberLocationSource, VerificationStatus

router = APIRouter(prefix="/v1/callers", tags=["callers"])
#: The deprecated path form, included only when ``ApiSettings.legacy_caller_path`` is on.
legacy_router = APIRouter(prefix="/v1/callers", tags=["callers"])

CALLER_ROLES = require_roles("intake")  # admin always passes


class CallerLookup(BaseModel):
    """Who is calling: the number, in the body so it stays out of URLs and access logs."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"phone": "0812-3456-7890"}]}
    )

    phone: str = Field(min_length=1, max_length=64, description="Any common format.")


class CallerLocation(BaseModel):
    """Where a registered caller lives and how we know."""

    lon: float
    lat: float
    source: SubscriberLocationSource
    geocode_confidence: float | None


class NuisanceRecord(BaseModel):
    """How this number has used intake before."""

    reports_made: int
    false_reports: int = Field(description="Reports closed as false_report or prank.")
    last_seen: datetime | None


class CallerOut(BaseModel):
    """Who is calling. Unknown numbers: ``registered: false`` and no location."""

    registered: bool
    phone: str = Field(description="Masked, e.g. +62812****7890.")
    subscriber_id: str | None
    name: str | None
    address: str | None
    location: CallerLocation | None
    zones: dict[str, Any] = Field(description="Per layer, with the current boundaries.")
    responders: dict[str, Any] = Field(description="Per facility type, nearest first.")
    warnings: list[str]
    verification_status: VerificationStatus | None
    nuisance: NuisanceRecord


_REGISTERED = {
    "registered": True,
    "phone": "+62812****7890",
    "subscriber_id": "q2V0m9N1cX8yLrT4bWfE5g",
    "name": "Siti Rahma",
    "address": "Jalan Aceh 12",
    "location": {"lon": 107.6191, "lat": -6.9175, "source": "given", "geocode_confidence": None},
    "zones": {"kelurahan": {"layer": "kelurahan", "zone_id": "3273010001", "status": "inside"}},
    "responders": {"fire_station": [{"facility_id": "FS-01", "distance_m": 1234.5}]},
    "warnings": [],
    "verification_status": "verified",
    "nuisance": {"reports_made": 2, "false_reports": 0, "last_seen": "2024-05-01T08:01:00Z"},
}
_UNKNOWN = {
    "registered": False,
    "phone": "+62812****0000",
    "subscriber_id": None,
    "name": None,
    "address": None,
    "location": None,
    "zones": {},
    "responders": {},
    "warnings": [],
    "verification_status": None,
    "nuisance": {"reports_made": 0, "false_reports": 0, "last_seen": None},
}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": CallerOut,
        "description": "The caller; unknown numbers are not an error.",
        "content": {
            "application/json": {
                "examples": {
                    "registered": {"value": _REGISTERED},
                    "unknown": {"value": _UNKNOWN},
                }
            }
        },
    },
    422: {"description": "Not a phone number (the reason is named)."},
}

Registry = Annotated[SubscriberService, Depends(get_subscriber_service)]


def _answer(phone: str, registry: SubscriberService, principal: Principal) -> Response:
    """The one answer of both forms: location, zones and responders now, the nuisance record.

    The lookup is audited first; 503 when the audit log cannot be written (fail closed)."""
    return json_response(registry.caller(phone, actor=principal))


@router.post(
    "/lookup",
    operation_id="lookup_caller",
    summary="Who is calling?",
    response_class=Response,
    responses=_RESPONSES,
)
def lookup_caller(
    body: CallerLookup,
    registry: Registry,
    principal: Annotated[Principal, Depends(CALLER_ROLES)],
) -> Response:
    """The call-taker's answer: location, zones and responders now, and the nuisance record."""
    return _answer(body.phone, registry, principal)


@legacy_router.get(
    "/{phone}",
    operation_id="lookup_caller_by_path",
    summary="Who is calling? (deprecated: the number ends up in access logs)",
    response_class=Response,
    responses=_RESPONSES,
    deprecated=True,
)
def lookup_caller_by_path(
    phone: str,
    registry: Registry,
    principal: Annotated[Principal, Depends(CALLER_ROLES)],
) -> Response:
    """As ``POST /v1/callers/lookup``; served only with ``GEO_ROUTER_LEGACY_CALLER_PATH=true``."""
    return _answer(phone, registry, principal)
