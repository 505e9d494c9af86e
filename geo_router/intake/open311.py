"""Open311 GeoReport v2: pure mapping between our reports and the spec's shapes.

Nothing here touches a database or HTTP; the API module parses the request, calls
:class:`~geo_router.intake.reports.service.ReportService` and renders with these
functions. The shapes follow
https://wiki.open311.org/GeoReport_v2 (JSON lists, and XML ``<services><service>``,
``<service_requests><request>``, ``<errors><error>``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from geo_router.city.coords import decimal_number
from geo_router.city.profile import CategorySpec
from geo_router.errors import InputError
from geo_router.intake.reports.models import (
    MAX_PAGE,
    Report,
    ReportFilters,
    ReportInput,
    public_point,
)
from geo_router.store.schema import (
    PENDING_STORE,
    REPORT_STATES,
    STATUSES,
    LiveChannel,
    ReportStatus,
)

if TYPE_CHECKING:
    from geo_router.city.snapshot import CitySnapshot

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_WINDOW",
    "MAX_REQUESTS",
    "OPEN311_STATUSES",
    "XML_MEDIA_TYPE",
    "Format",
    "Open311Post",
    "Open311Query",
    "error_list",
    "open311_status",
    "parse_format",
    "parse_post",
    "parse_query",
    "post_response",
    "render",
    "service_definition",
    "service_list",
    "service_request",
    "token_response",
]

Format = Literal["json", "xml"]
XML_MEDIA_TYPE = "text/xml; charset=utf-8"
#: Largest number of requests one GET answers (the spec's suggestion).
MAX_REQUESTS = 1000
#: Window of a GET requests query without dates (the spec's default).
DEFAULT_WINDOW = timedelta(days=90)
#: Our status -> the spec's two statuses: every status but closed is open (``pending_store``,
#: an emergency waiting in the journal for the database, included).
OPEN311_STATUSES: dict[str, str] = {s: "closed" if s == "closed" else "open" for s in REPORT_STATES}
_OUR_STATUSES: dict[str, tuple[ReportStatus, ...]] = {
    spec: tuple(s for s in STATUSES if OPEN311_STATUSES[s] == spec) for spec in ("open", "closed")
}
#: The channel of a POST from a key bound to no channel.
DEFAULT_CHANNEL: LiveChannel = "web"
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
#: Element names of each XML list (root, item).
_XML_NAMES: dict[str, tuple[str, str]] = {
    "services": ("services", "service"),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
}


def parse_format(fmt: str) -> Format:
    """``json`` or ``xml`` (the path suffix); InputError for anything else."""
    value = fmt.lower()
    if value not in ("json", "xml"):
        raise InputError(f"unknown format {fmt!r}: use .json or .xml", detail={"field": "format"})
    return value  # type: ignore[return-value]


def open311_status(status: str) -> str:
    """Our lifecycle status as the spec's ``open`` / ``closed``."""
    return OPEN311_STATUSES[status]


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 with timezone, seconds precision (``2026-01-02T03:04:05+00:00``)."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.isoformat(timespec="seconds")


# --------------------------------------------------------------------------- services


def _keywords(category: CategorySpec) -> str:
    words = [w for w in str(category.code).replace("-", "_").split("_") if w]
    if category.emergency:
        words.append("emergency")
    return ", ".join(dict.fromkeys(words))


def service_list(categories: Iterable[CategorySpec]) -> list[dict[str, Any]]:
    """GET services: one entry per category."""
    return [
        {
            "service_code": c.code,
            "service_name": c.name or c.code,
            "description": c.name or c.code,
            "metadata": False,
            "type": "realtime",
            "keywords": _keywords(c),
            "group": c.agency,
        }
        for c in categories
    ]


def service_definition(category: CategorySpec) -> dict[str, Any]:
    """GET services/{code}: no extra attributes (``metadata`` is false for every service)."""
    return {"service_code": category.code, "attributes": []}


# --------------------------------------------------------------------------- requests


def service_notice(report: Report) -> str | None:
    """A short notice for the requester: where the report went, and anything odd."""
    agency = report.decision.get("agency")
    parts = [f"Routed to {agency}"] if agency else []
    if report.status == PENDING_STORE:
        parts.append("taken while the database was unavailable: it is stored shortly")
    if "outside_coverage" in report.flags:
        parts.append("the location lies outside the city's zones")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] if text else None


def service_request(
    report: Report, service_name: str | None = None, snapshot: CitySnapshot | None = None
) -> dict[str, Any]:
    """One report in the GET requests shape (no personal data: phones never appear).

    ``lat``/``long`` are the report's :func:`public_point` in ``snapshot`` (the city the
    feed serves): a report located at a registered caller's home is published at a point
    of its zone, or without a point (and never with an address), never at the home.
    """
    location = report.decision.get("location") or {}
    point = public_point(report, snapshot)
    lon, lat = point if point is not None else (None, None)
    at_home = report.location_source == "registered_caller"
    return {
        "service_request_id": report.id,
        "status": open311_status(report.status),
        "status_notes": report.resolution,
        "service_name": service_name or report.category,
        "service_code": report.category,
        "description": report.description,
        "agency_responsible": report.decision.get("agency"),
        "service_notice": service_notice(report),
        "requested_datetime": _iso(report.created_at),
        "updated_datetime": _iso(report.updated_at),
        "expected_datetime": None,
        "address": None if at_home else location.get("label"),
        "address_id": None,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": report.media_url,
    }


def post_response(report: Report) -> list[dict[str, Any]]:
    """POST requests answer: the id at once (we create synchronously), no account."""
    return [
        {
            "service_request_id": report.id,
            "service_notice": service_notice(report),
            "account_id": None,
        }
    ]


def token_response(token: str, request_id: str | None) -> list[dict[str, Any]]:
    """GET tokens/{token}: our tokens are the request ids themselves."""
    return [{"service_request_id": request_id, "token": token}]


def error_list(code: int, description: str) -> list[dict[str, Any]]:
    """The spec's error list."""
    return [{"code": int(code), "description": description}]


# --------------------------------------------------------------------------- XML


#: Characters XML 1.0 cannot carry at all, not even escaped (control characters).
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: Any) -> str | None:
    """Element text: booleans as true/false; characters XML cannot hold are dropped."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return _NOT_XML.sub("", str(value))


def _xml_item(parent: ET.Element, name: str, data: Mapping[str, Any]) -> None:
    item = ET.SubElement(parent, name)
    for key, value in data.items():
        child = ET.SubElement(item, key)
        if isinstance(value, list):
            # Nested lists (service definition attributes) are empty for our services.
            for entry in value:
                _xml_item(child, key.rstrip("s") or key, entry)
            continue
        child.text = _xml_text(value)


def to_xml(kind: str, items: list[Mapping[str, Any]]) -> bytes:
    """Render a list as the spec's XML (``kind``: services, requests or errors).

    ElementTree escapes every text, so user descriptions cannot break the document.
    """
    root_name, item_name = _XML_NAMES[kind]
    root = ET.Element(root_name)
    for data in items:
        _xml_item(root, item_name, data)
    return _document(root)


def _document(root: ET.Element) -> bytes:
    """UTF-8 bytes with the declaration the spec asks for (``encoding="UTF-8"``)."""
    return _XML_DECLARATION + ET.tostring(root, encoding="unicode").encode("utf-8")


def definition_xml(definition: Mapping[str, Any]) -> bytes:
    """A service definition as ``<service_definition>`` XML."""
    root = ET.Element("service_definition")
    ET.SubElement(root, "service_code").text = str(definition["service_code"])
    attributes = ET.SubElement(root, "attributes")
    for attribute in definition.get("attributes", []):
        _xml_item(attributes, "attribute", attribute)
    return _document(root)


def render(kind: str, payload: Any, fmt: Format) -> tuple[bytes, str]:
    """Body and media type of a response in JSON or XML.

    ``kind`` is services, requests, errors or definition.
    """
    if fmt == "json":
        import orjson

        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), "application/json"
    if kind == "definition":
        return definition_xml(payload), XML_MEDIA_TYPE
    return to_xml(kind, payload), XML_MEDIA_TYPE


# --------------------------------------------------------------------------- parsing


def _parse_datetime(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{name} must be a W3C/ISO 8601 datetime, e.g. 2026-01-31T00:00:00Z; got {value!r}",
            detail={"field": name, "reason": "not a datetime"},
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _first(form: Mapping[str, Any], name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True, slots=True)
class Open311Query:
    """A GET requests query: filters for the report service, at most ``MAX_REQUESTS``."""

    filters: ReportFilters
    limit: int


def parse_query(params: Mapping[str, Any], *, now: datetime) -> Open311Query:
    """The spec's GET requests parameters as report filters.

    ``service_request_id`` (comma list) ignores every other filter, as the spec says;
    without dates the window is the last 90 days.
    """
    ids_text = _first(params, "service_request_id")
    if ids_text is not None:
        ids = tuple(dict.fromkeys(i.strip() for i in ids_text.split(",") if i.strip()))
        if len(ids) > MAX_PAGE:
            raise InputError(
                f"at most {MAX_PAGE} service_request_id values per query",
                detail={"field": "service_request_id"},
            )
        return Open311Query(ReportFilters.parse(ids=ids, limit=MAX_PAGE), len(ids))
    end = _first(params, "end_date")
    start = _first(params, "start_date")
    end_at = _parse_datetime("end_date", end) if end else None
    start_at = _parse_datetime("start_date", start) if start else None
    if start_at is None:
        start_at = (end_at or now) - DEFAULT_WINDOW
    if end_at is not None and end_at < start_at:
        raise InputError("end_date is before start_date", detail={"field": "end_date"})
    statuses: tuple[ReportStatus, ...] | None = None
    status = _first(params, "status")
    if status is not None:
        wanted = [s.strip().lower() for s in status.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in _OUR_STATUSES]
        if unknown:
            raise InputError(
                f"status must be open or closed, got {unknown[0]!r}", detail={"field": "status"}
            )
        statuses = tuple(s for w in wanted for s in _OUR_STATUSES[w])
    filters = ReportFilters.parse(
        category=_first(params, "service_code"),
        created_from=start_at,
        created_to=end_at,
        statuses=statuses,
        limit=MAX_PAGE,
    )
    return Open311Query(filters, MAX_REQUESTS)


@dataclass(frozen=True, slots=True)
class Open311Post:
    """The fields of a POST requests form that we use (names, e-mail are not stored)."""

    api_key: str | None
    service_code: str
    lat: float | None
    long: float | None
    address: str | None
    description: str | None
    phone: str | None
    media_url: str | None
    jurisdiction_id: str | None

    def to_report_input(self, channel: str) -> ReportInput:
        """The native report this POST files."""
        data: dict[str, Any] = {
            "channel": channel,
            "category": self.service_code,
            "description": self.description,
            "reporter_phone": self.phone,
            "media_url": self.media_url,
        }
        if self.lat is not None and self.long is not None:
            data["location"] = {"lon": self.long, "lat": self.lat}
        else:
            data["address"] = self.address
        return ReportInput.parse({k: v for k, v in data.items() if v is not None})


def _float(form: Mapping[str, Any], name: str) -> float | None:
    text = _first(form, name)
    if text is None:
        return None
    value = decimal_number(text)
    if value is None:
        raise InputError(
            f"{name} must be a number (WGS84 decimal degrees), got {text!r}",
            detail={"field": name, "reason": "not a number"},
        )
    return value


def parse_post(form: Mapping[str, Any]) -> Open311Post:
    """Read a POST requests form (``lat`` + ``long`` or ``address_string``/``address_id``).

    Raises
    ------
    InputError
        No service_code, no location, only one of lat/long, non-numeric coordinates.
    """
    service_code = _first(form, "service_code")
    if service_code is None:
        raise InputError("service_code was not provided", detail={"field": "service_code"})
    lat, lon = _float(form, "lat"), _float(form, "long")
    if (lat is None) != (lon is None):
        raise InputError(
            "lat and long must be sent together", detail={"field": "lat" if lat is None else "long"}
        )
    address = _first(form, "address_string") or _first(form, "address_id")
    if lat is None and address is None:
        raise InputError(
            "a location is required: lat + long, address_string or address_id",
            detail={"field": "lat"},
        )
    return Open311Post(
        api_key=_first(form, "api_key"),
        service_code=service_code,
        lat=lat,
        long=lon,
        address=address,
        description=_first(form, "description"),
        phone=_first(form, "phone"),
        media_url=_first(form, "media_url"),
        jurisdiction_id=_first(form, "jurisdiction_id"),
    )
