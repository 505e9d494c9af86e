"""The registry's answers (:class:`Subscriber`, :class:`CallerInfo`) and the checks of its fields.

The answers are dataclasses encoded as they are (``geo_router.encoding.json.dumps``) by the
API; personal fields are left out of ``repr`` so a stray log line cannot leak them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from geo_router.city.models import RouteResult
from geo_router.encoding.json import route_result_dict
from geo_router.errors import InputError
from geo_router.intake.locate import Located
from geo_router.intake.phones import PhoneNumber
from geo_router.intake.secrets import Secrets
from geo_router.store.reports_repo import NuisanceRecord
from geo_router.store.schema import VERIFICATION_STATUSES, new_token_id
from geo_router.store.subscribers_repo import Home, SubscriberFacts, SubscriberRow

__all__ = [
    "MAX_OFFSET",
    "MAX_PAGE",
    "RESPONDERS_K",
    "CallerInfo",
    "Subscriber",
    "SubscriberPage",
    "check_consent",
    "check_verification",
    "clean_text",
    "facts_of",
    "given_point",
    "new_subscriber_row",
    "rehome",
]

#: Responders per facility type kept with a subscriber.
RESPONDERS_K = 3
#: Largest page ``list`` returns.
MAX_PAGE = 500
#: Largest offset a page may start at (beyond any real registry; bounded for SQL).
MAX_OFFSET = 2**31 - 1

_TEXT_LIMITS = {"name": 200, "address": 500, "verification_method": 64}


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscriber(SubscriberFacts):
    """A registered caller as answered. ``phone`` is masked unless ``phone_revealed``."""

    id: str
    phone: str = field(repr=False)
    name: str | None = field(repr=False)
    address: str | None = field(repr=False)
    phone_revealed: bool = False


@dataclass(frozen=True, slots=True)
class SubscriberPage:
    """A page of subscribers, oldest first, and how many there are in all."""

    items: list[Subscriber]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """The call-taker's answer for an incoming number.

    Unknown numbers have ``registered=False`` and no location; zones and responders of a
    registered caller are routed with the current router (the newest boundaries).
    """

    registered: bool
    phone: str = field(repr=False)  #: masked
    nuisance: NuisanceRecord
    subscriber_id: str | None = None
    name: str | None = field(default=None, repr=False)
    address: str | None = field(default=None, repr=False)
    location: Home | None = None
    zones: dict[str, Any] = field(default_factory=dict)
    responders: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    verification_status: str | None = None


def clean_text(value: object, name: str) -> str | None:
    """Stripped text within its length limit (``name``, ``address``, ``verification_method``);
    empty means None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{name} must be text", detail={"field": name, "reason": "not text"})
    text = value.strip()
    limit = _TEXT_LIMITS[name]
    if len(text) > limit:
        raise InputError(
            f"{name} is longer than {limit} characters",
            detail={"field": name, "reason": f"longer than {limit} characters"},
        )
    return text or None


def check_verification(status: object) -> str:
    """A known verification status, else InputError listing them."""
    if status not in VERIFICATION_STATUSES:
        raise InputError(
            f"verification_status must be one of {', '.join(VERIFICATION_STATUSES)}",
            detail={"field": "verification_status", "allowed": list(VERIFICATION_STATUSES)},
        )
    return str(status)


def check_consent(value: object) -> datetime | None:
    """A timezone-aware consent time (or None), else InputError."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InputError(
            "consent_at must be a timezone-aware date-time",
            detail={"field": "consent_at", "reason": "not a timezone-aware date-time"},
        )
    return value


def given_point(lon: float | None, lat: float | None) -> tuple[float, float] | None:
    """``(lon, lat)``, or None when neither is given; InputError when only one is."""
    if (lon is None) != (lat is None):
        missing = "lat" if lat is None else "lon"
        raise InputError(
            f"lon and lat go together ({missing} is missing)",
            detail={"field": missing, "reason": "missing"},
        )
    return None if lon is None or lat is None else (lon, lat)


def rehome(row: SubscriberRow, located: Located, route: RouteResult) -> SubscriberRow:
    """``row`` living at ``located``, with the zones and responders ``route`` found there."""
    answer = route_result_dict(route)
    return replace(
        row,
        lon=located.lon,
        lat=located.lat,
        location_source=located.source,
        geocode_confidence=located.confidence if located.source == "geocoded" else None,
        zones=answer["zones"],
        responders=answer["responders"],
    )


def new_subscriber_row(
    secrets: Secrets,
    phone: PhoneNumber,
    texts: tuple[str | None, str | None],
    located: Located,
    route: RouteResult,
    *,
    now: datetime,
    verification: tuple[str, str | None, datetime | None] = ("unverified", None, None),
) -> SubscriberRow:
    """A new subscriber's row: number, name and address sealed, home routed.

    Parameters
    ----------
    secrets
        Encrypts the number, name and address (the number's HMAC comes with ``phone``).
    phone
        The parsed number.
    texts
        Name and address, cleaned.
    located, route
        The home and its routing answer.
    now
        Creation time.
    verification
        Status, method and consent time.
    """
    name, address = texts
    status, method, consent_at = verification
    unplaced = SubscriberRow(
        id=new_token_id(),
        phone_hash=phone.hash,
        phone_enc=secrets.encrypt(phone.e164),
        name_enc=None if name is None else secrets.encrypt(name),
        address_enc=None if address is None else secrets.encrypt(address),
        lon=None,
        lat=None,
        location_source=None,
        geocode_confidence=None,
        zones={},
        responders={},
        verification_status=status,
        verification_method=method,
        consent_at=consent_at,
        created_at=now,
        updated_at=now,
    )
    return rehome(unplaced, located, route)


def facts_of(row: SubscriberFacts) -> dict[str, Any]:
    """The clear fields of a row, to build its answer from."""
    return {f.name: getattr(row, f.name) for f in fields(SubscriberFacts)}
