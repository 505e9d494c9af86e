"""Report intake: create (idempotent, screened for abuse), read, list, lifecycle; bulk import.

A report is stored with the full routing decision that was made for it (zones with their
candidates and layer versions, responders, agency, flags), so a dispatcher can later see
exactly why it went where it went, even after the layers changed. Abuse screening only ever
*flags*: an emergency report is always stored and routed; only a non-emergency report from a
number over its hourly limit is refused (``RateLimitedError``).
"""

from __future__ import annotations

import hashlib
import math
import secrets as token_source
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.dialects import postgresql

from geo_router.city.models import STATUS_CODES, CategoryRoute, RouteResult
from geo_router.errors import (
    IdempotencyConflictError,
    InputError,
    InvalidCoordinatesError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnknownCategoryError,
)
from geo_router.store.engine import write_transaction
from geo_router.store.schema import (
    GEOM_COLUMN,
    RESOLUTIONS,
    STATUSES,
    idempotency_keys,
    report_updates,
    report_zones,
    reports,
)
from geo_router.store.schema import REPORT_CHANNELS as CHANNELS

__all__ = [
    "FLAGS",
    "MAX_PAGE",
    "PRIVATE_FIELDS",
    "Actor",
    "ImportSummary",
    "Location",
    "Page",
    "Report",
    "ReportFilters",
    "ReportInput",
    "ReportService",
    "ServiceActor",
    "StatusChange",
    "has_geom_column",
    "import_reports",
    "new_report_id",
    "nuisance_record",
]

#: Every flag a report may carry.
FLAGS: tuple[str, ...] = (
    "unregistered_caller",
    "repeat_false_reports",
    "possible_axis_swap",
    "outside_coverage",
    "rate_limited",
    "unknown_category",
    "invalid_coordinates",
    "invalid_created_date",
)
#: Fields only admins and intake keys see (never analysts, planners or the public).
PRIVATE_FIELDS: tuple[str, ...] = ("reporter_phone_hash", "reporter_phone_enc")
#: Largest page ``list`` returns.
MAX_PAGE = 500
#: Reports closed as one of these count against the reporting number.
FALSE_RESOLUTIONS: tuple[str, ...] = ("false_report", "prank")
#: False reports from one number that earn the ``repeat_false_reports`` flag.
REPEAT_FALSE_THRESHOLD = 2
RATE_WINDOW = timedelta(hours=1)
#: Allowed status changes; reopening (closed -> open) is for admins only.
TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("open", "acknowledged"),
        ("open", "closed"),
        ("acknowledged", "in_progress"),
        ("acknowledged", "closed"),
        ("in_progress", "closed"),
        ("closed", "open"),
    }
)
Channel = Literal["call", "sms", "social", "web", "app"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_report_id() -> str:
    """A random, non-sequential report id (``r_`` + 16 URL-safe characters)."""
    return "r_" + token_source.token_urlsafe(12)


class Actor(Protocol):
    """Who acts: an API key record, the open-mode principal or a :class:`ServiceActor`."""

    id: str
    name: str
    role: str
    channel: str | None


@dataclass(frozen=True, slots=True)
class ServiceActor:
    """An actor for code paths without an API key (CLI, imports, tests)."""

    id: str = "system"
    name: str = "system"
    role: str = "admin"
    channel: str | None = None


# --------------------------------------------------------------------------- inputs


class Location(BaseModel):
    """A point in GeoJSON order, EPSG:4326 (ranges are checked by the router, which also
    recognises swapped axes)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lon: float
    lat: float


class ReportInput(BaseModel):
    """What an intake channel sends to create a report.

    The location comes from ``location`` (source "given"), else ``address`` through the
    geocoder ("geocoded"), else the registered location of ``reporter_phone``
    ("registered_caller"). ``channel`` defaults to the API key's channel.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: Channel | None = None
    category: str = Field(min_length=1, max_length=64)
    description: str | None = Field(None, max_length=5000)
    location: Location | None = None
    address: str | None = Field(None, min_length=1, max_length=500)
    reporter_phone: str | None = Field(None, min_length=1, max_length=40)
    media_url: str | None = Field(None, max_length=2000)

    @field_validator("media_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("media_url must be an http(s) URL")
        return value

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ReportInput:
        """Validate a plain mapping; ``InputError`` naming every bad field."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise _input_error("report", exc) from None


def _input_error(what: str, exc: ValidationError) -> InputError:
    """A pydantic error as an InputError (InvalidCoordinatesError for location fields)."""
    errors = [
        {"field": ".".join(str(p) for p in err["loc"]) or what, "message": err["msg"]}
        for err in exc.errors()
    ]
    text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    cls = InvalidCoordinatesError if errors[0]["field"].startswith("location") else InputError
    return cls(f"invalid {what}: {text}", detail={"errors": errors})


class ReportFilters(BaseModel):
    """Filters of :meth:`ReportService.list`; ``zone`` is ``layer:zone_id``.

    ``statuses`` and ``ids`` match any of several values (Open311 queries). ``bbox`` is
    ``minlon,minlat,maxlon,maxlat`` (text or a 4-sequence); naive datetimes are UTC.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    zone: tuple[str, str] | None = None
    category: str | None = None
    status: Literal["open", "acknowledged", "in_progress", "closed"] | None = None
    statuses: tuple[Literal["open", "acknowledged", "in_progress", "closed"], ...] | None = None
    ids: tuple[str, ...] | None = Field(None, max_length=MAX_PAGE)
    channel: Literal["call", "sms", "social", "web", "app", "import"] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=2**31 - 1)

    @field_validator("zone", mode="before")
    @classmethod
    def _split_zone(cls, value: Any) -> Any:
        if isinstance(value, str):
            layer, sep, zone_id = value.partition(":")
            if not sep or not layer or not zone_id:
                raise ValueError(
                    f"zone must be 'layer:zone_id', e.g. kelurahan:3273010001; got {value!r}"
                )
            return (layer, zone_id)
        return value

    @field_validator("bbox", mode="before")
    @classmethod
    def _split_bbox(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = value.split(",")
            if len(parts) != 4:
                raise ValueError("bbox must be minlon,minlat,maxlon,maxlat")
            return tuple(p.strip() for p in parts)
        return value

    @field_validator("bbox")
    @classmethod
    def _check_bbox(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is None:
            return None
        minlon, minlat, maxlon, maxlat = value
        if not all(math.isfinite(v) for v in value):
            raise ValueError("bbox values must be finite numbers")
        if not (-180 <= minlon <= maxlon <= 180 and -90 <= minlat <= maxlat <= 90):
            raise ValueError(
                "bbox must be minlon,minlat,maxlon,maxlat with min <= max, lon in "
                "[-180, 180] and lat in [-90, 90]"
            )
        return value

    @field_validator("created_from", "created_to")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @classmethod
    def parse(cls, **values: Any) -> ReportFilters:
        """Build filters from loose values (query strings); ``InputError`` naming the field."""
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise _input_error("filters", exc) from None


# --------------------------------------------------------------------------- outputs


@dataclass(slots=True)
class Report:
    """A stored report with its routing decision."""

    id: str
    channel: str
    category: str
    description: str | None
    status: str
    resolution: str | None
    lon: float | None
    lat: float | None
    location_source: str
    location_confidence: float | None
    reporter_phone_hash: str | None
    reporter_phone_enc: str | None
    media_url: str | None
    decision: dict[str, Any]
    zones: dict[str, str]
    flags: list[str]
    api_key_id: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @property
    def emergency(self) -> bool:
        """Whether the category was an emergency when the report was routed."""
        category = self.decision.get("category") or {}
        return bool(category.get("emergency", False))

    def to_dict(self, *, include_private: bool = True) -> dict[str, Any]:
        """JSON-ready dict (ISO 8601 times); ``include_private=False`` drops phone fields."""
        data = asdict(self)
        for name in ("created_at", "updated_at", "closed_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        if not include_private:
            for name in PRIVATE_FIELDS:
                data.pop(name, None)
        return data

    def view_for(self, actor: Actor | None, secrets: Any = None) -> dict[str, Any]:
        """The dict a caller may see.

        The stored hash and ciphertext never leave the service. Admin and intake keys see the
        reporter's number as ``reporter_phone`` (decrypted with ``secrets``; masked for
        intake); every other role sees no phone field at all.
        """
        role = getattr(actor, "role", None)
        data = self.to_dict(include_private=False)
        if role in ("admin", "intake") and secrets is not None and self.reporter_phone_enc:
            from geo_router.intake.phones import mask_phone

            phone = secrets.decrypt(self.reporter_phone_enc)
            data["reporter_phone"] = phone if role == "admin" else mask_phone(phone)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Inverse of :meth:`to_dict` (with private fields)."""
        values = dict(data)
        for name in ("created_at", "updated_at", "closed_at"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        fields: dict[str, Any] = {name: values.get(name) for name in cls.__dataclass_fields__}
        return cls(**fields)


@dataclass(slots=True)
class Page:
    """One page of reports, newest first, with the total matching count."""

    items: list[Report]
    total: int
    limit: int
    offset: int

    def view_for(self, actor: Actor | None, secrets: Any = None) -> dict[str, Any]:
        """JSON-ready page as ``actor`` may see it (see :meth:`Report.view_for`)."""
        return {
            "items": [item.view_for(actor, secrets) for item in self.items],
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
        }


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One entry of a report's history."""

    id: int
    report_id: str
    at: datetime
    actor: str | None
    from_status: str | None
    to_status: str
    resolution: str | None
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class _Located:
    lon: float
    lat: float
    source: str
    confidence: float | None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class _Caller:
    e164: str
    phone_hash: str
    phone_enc: str
    subscriber: Any | None


# --------------------------------------------------------------------------- helpers


def _actor_id(actor: Actor | None) -> str:
    """The id idempotency keys and records are scoped to ("" without an actor)."""
    return str(getattr(actor, "id", None) or "")


def _actor_label(actor: Actor | None) -> str:
    """``id/name`` of an actor, for the history."""
    ident = getattr(actor, "id", None) or "system"
    name = getattr(actor, "name", None)
    return f"{ident}/{name}"[:200] if name and name != ident else str(ident)[:200]


def _channel_scope(actor: Actor | None) -> str | None:
    """The only channel an intake key bound to a channel may see, else None (all)."""
    if getattr(actor, "role", None) == "intake":
        return getattr(actor, "channel", None)
    return None


def _visible(actor: Actor | None) -> list[sa.ColumnElement[bool]]:
    """WHERE conditions limiting reports to what ``actor`` may see."""
    channel = _channel_scope(actor)
    return [reports.c.channel == channel] if channel else []


def _request_hash(payload: ReportInput, channel: str) -> str:
    """sha256 of the canonical JSON of a request (sorted keys, defaults filled in)."""
    body = payload.model_dump(mode="json")
    body["channel"] = channel
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _plain_json(obj: Any) -> Any:
    """Dataclasses, enums and numpy values as plain JSON types (NaN -> None)."""
    return orjson.loads(
        orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    )


def _category_codes(router: Any) -> list[str]:
    """The category codes of the router's city profile."""
    return [c.code for c in router.snapshot.profile.categories]


def _resolve_category(router: Any, code: str) -> CategoryRoute:
    """The category route; ``UnknownCategoryError`` listing the known codes."""
    try:
        return router.category(code)  # type: ignore[no-any-return]
    except UnknownCategoryError:
        known = _category_codes(router)
        raise UnknownCategoryError(
            f"unknown category {code!r}; known categories: {', '.join(known) or 'none'}",
            detail={"field": "category", "reason": "unknown category", "known": known},
        ) from None


def _decision(
    route: RouteResult, versions: Mapping[str, Any], located: _Located, flags: list[str]
) -> dict[str, Any]:
    """The full routing decision to keep with a report."""
    decision: dict[str, Any] = _plain_json(route)
    decision["agency"] = route.category.agency if route.category is not None else None
    decision["versions"] = _plain_json(dict(versions))
    decision["location"] = {
        "source": located.source,
        "confidence": located.confidence,
        "label": located.label,
    }
    decision["flags"] = list(flags)
    return decision


def _report_from_row(row: sa.Row[Any], zones: dict[str, str]) -> Report:
    data = row._mapping
    return Report(
        id=data["id"],
        channel=data["channel"],
        category=data["category"],
        description=data["description"],
        status=data["status"],
        resolution=data["resolution"],
        lon=data["lon"],
        lat=data["lat"],
        location_source=data["location_source"],
        location_confidence=data["location_confidence"],
        reporter_phone_hash=data["reporter_phone_hash"],
        reporter_phone_enc=data["reporter_phone_enc"],
        media_url=data["media_url"],
        decision=data["decision"] or {},
        zones=zones,
        flags=list(data["flags"] or []),
        api_key_id=data["api_key_id"],
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        closed_at=data["closed_at"],
    )


def _zones_of(conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, str]]:
    """report id -> {layer: zone_id} for the given reports (one query)."""
    out: dict[str, dict[str, str]] = {i: {} for i in ids}
    if not ids:
        return out
    rows = conn.execute(
        sa.select(report_zones.c.report_id, report_zones.c.layer, report_zones.c.zone_id).where(
            report_zones.c.report_id.in_(ids)
        )
    )
    for report_id, layer, zone_id in rows:
        out[report_id][layer] = zone_id
    return out


_GEOM_CACHE: dict[str, bool] = {}


def has_geom_column(engine: sa.Engine) -> bool:
    """Whether ``reports.geom`` (PostGIS) exists in this database (cached per URL)."""
    if engine.dialect.name != "postgresql":
        return False
    key = engine.url.render_as_string(hide_password=True)
    if key not in _GEOM_CACHE:
        # pg_attribute, not the inspector: SQLAlchemy does not know the geometry type.
        query = sa.text(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('reports') "
            "AND attname = :name AND NOT attisdropped"
        )
        with engine.connect() as conn:
            _GEOM_CACHE[key] = conn.execute(query, {"name": GEOM_COLUMN}).first() is not None
    return _GEOM_CACHE[key]


def nuisance_record(engine: sa.Engine, phone_hash: str) -> dict[str, Any]:
    """How a number has used intake: reports made, false reports, last report time.

    Parameters
    ----------
    engine
        The store's engine.
    phone_hash
        ``Secrets.hash_phone`` of the E.164 number.

    Returns
    -------
    dict
        ``reports_made`` (int), ``false_reports`` (closed as false_report or prank),
        ``last_seen`` (UTC datetime or None).
    """
    false_case = sa.case((reports.c.resolution.in_(FALSE_RESOLUTIONS), 1), else_=0)
    query = sa.select(
        sa.func.count(reports.c.id),
        sa.func.coalesce(sa.func.sum(false_case), 0),
        sa.func.max(reports.c.created_at),
    ).where(reports.c.reporter_phone_hash == phone_hash)
    with engine.connect() as conn:
        made, false_reports, last_seen = conn.execute(query).one()
    return {"reports_made": int(made), "false_reports": int(false_reports), "last_seen": last_seen}


# --------------------------------------------------------------------------- service

# Aliases: inside ReportService, ``list`` names the method.
_Conditions = list[sa.ColumnElement[bool]]
_History = list[StatusChange]


class ReportService:
    """Report intake over the store's engine.

    Parameters
    ----------
    engine
        The store's engine (migration 0002 applied).
    router_provider
        A ``Router`` or a callable returning the current one (routers are swapped).
    secrets
        ``Secrets`` (``hash_phone``, ``encrypt``) for reporter phones.
    registry
        ``SubscriberRegistry`` (``get_by_phone``); without it callers are never looked up.
    geocoder
        ``Geocoder`` for ``address`` text; without it addresses are refused.
    region
        Default phone region for numbers without a country code.
    rate_limit_per_hour
        Reports per number and hour before non-emergency reports are refused.
    clock
        Returns the current UTC time (tests pass a fake).
    k
        Responders kept per facility type in the decision.
    idempotency_ttl
        How long an Idempotency-Key replays its first answer. After that the key is free
        again (a new report), and expired keys are purged on the next idempotent write.
    """

    def __init__(
        self,
        engine: sa.Engine,
        router_provider: Any,
        secrets: Any,
        *,
        registry: Any | None = None,
        geocoder: Any | None = None,
        region: str = "ID",
        rate_limit_per_hour: int = 20,
        clock: Callable[[], datetime] = _utcnow,
        k: int = 3,
        idempotency_ttl: timedelta = timedelta(hours=24),
    ) -> None:
        self.engine = engine
        self._router_provider = router_provider
        self.secrets = secrets
        self.registry = registry
        self.geocoder = geocoder
        self.region = region
        self.rate_limit_per_hour = rate_limit_per_hour
        self.clock = clock
        self.k = k
        if idempotency_ttl <= timedelta(0):
            raise ValueError(f"idempotency_ttl must be positive, got {idempotency_ttl}")
        self.idempotency_ttl = idempotency_ttl

    @property
    def router(self) -> Any:
        """The current router."""
        provider = self._router_provider
        return provider if hasattr(provider, "route") else provider()

    # ---------------------------------------------------------------- create

    def create(
        self,
        payload: ReportInput | Mapping[str, Any],
        *,
        actor: Actor | None,
        idempotency_key: str | None = None,
    ) -> Report:
        """Locate, route, screen and store a new report (in one transaction).

        Parameters
        ----------
        payload
            The report (a ``ReportInput`` or a mapping validated into one).
        actor
            Who files it; an intake key bound to a channel may only file on that channel.
        idempotency_key
            Optional; the same key with the same body returns the first answer.

        Raises
        ------
        InputError
            No usable location, weak geocoder match (``detail['candidates']``), bad fields.
        UnknownCategoryError, InvalidPhoneError, InvalidCoordinatesError
            As named.
        IdempotencyConflictError
            The key was used before with a different body.
        RateLimitedError
            A non-emergency report from a number over its hourly limit.
        """
        report_in = payload if isinstance(payload, ReportInput) else ReportInput.parse(payload)
        channel = self._channel(report_in, actor)
        owner = _actor_id(actor)
        request_hash = _request_hash(report_in, channel)
        keys_since = self.clock() - self.idempotency_ttl  # older keys have expired
        if idempotency_key is not None:
            idempotency_key = _check_idempotency_key(idempotency_key)
            with self.engine.connect() as conn:
                replay = _replay(conn, idempotency_key, owner, request_hash, keys_since)
            if replay is not None:
                return replay

        router = self.router
        category = _resolve_category(router, report_in.category)
        caller = self._caller(report_in.reporter_phone)
        now = self.clock()
        flags = self._caller_flags(caller, category, now)
        located = self._locate(report_in, caller)
        route = router.route(located.lon, located.lat, category=category.code, k=self.k)
        for warning in route.warnings:
            if str(warning) not in flags:
                flags.append(str(warning))
        report = Report(
            id=new_report_id(),
            channel=channel,
            category=category.code,
            description=report_in.description,
            status="open",
            resolution=None,
            lon=located.lon,
            lat=located.lat,
            location_source=located.source,
            location_confidence=located.confidence,
            reporter_phone_hash=caller.phone_hash if caller else None,
            reporter_phone_enc=caller.phone_enc if caller else None,
            media_url=report_in.media_url,
            decision=_decision(route, router.snapshot.versions, located, flags),
            zones={name: m.zone_id for name, m in route.zones.items() if m.zone_id is not None},
            flags=flags,
            api_key_id=getattr(actor, "id", None),
            created_at=now,
            updated_at=now,
            closed_at=None,
        )
        try:
            self._insert(report, actor, idempotency_key, request_hash, keys_since)
        except sa.exc.IntegrityError:
            # A concurrent request with the same Idempotency-Key won the race: answer as it did.
            if idempotency_key is None:
                raise
            with self.engine.connect() as conn:
                replay = _replay(conn, idempotency_key, owner, request_hash, keys_since)
            if replay is None:
                raise
            return replay
        return report

    def _channel(self, payload: ReportInput, actor: Actor | None) -> str:
        """The report's channel: the payload's, else the key's; must match a bound key."""
        bound = _channel_scope(actor)
        channel = payload.channel or bound or getattr(actor, "channel", None)
        if channel is None:
            raise InputError(
                f"channel is required (one of {', '.join(CHANNELS[:5])}): this key has none",
                detail={"field": "channel", "reason": "required"},
            )
        if bound and channel != bound:
            raise PermissionDeniedError(
                f"this key files reports on channel {bound!r} only, not {channel!r}",
                detail={"channel": channel, "allowed_channel": bound},
            )
        return channel

    def _caller(self, phone_text: str | None) -> _Caller | None:
        """Normalize, hash and encrypt the reporter's phone; look the caller up."""
        if phone_text is None:
            return None
        from geo_router.intake.phones import normalize_phone  # phonenumbers loads only when needed

        e164 = normalize_phone(phone_text, self.region)
        subscriber = self.registry.get_by_phone(e164) if self.registry is not None else None
        return _Caller(
            e164=e164,
            phone_hash=self.secrets.hash_phone(e164),
            phone_enc=self.secrets.encrypt(e164),
            subscriber=subscriber,
        )

    def _caller_flags(
        self, caller: _Caller | None, category: CategoryRoute, now: datetime
    ) -> list[str]:
        """Abuse-screening flags of the caller; refuses non-emergency reports over the limit."""
        if caller is None:
            return []
        flags: list[str] = []
        if self.registry is not None and caller.subscriber is None:
            flags.append("unregistered_caller")
        if nuisance_record(self.engine, caller.phone_hash)["false_reports"] >= (
            REPEAT_FALSE_THRESHOLD
        ):
            flags.append("repeat_false_reports")
        retry_after = self._retry_after(caller.phone_hash, now)
        if retry_after is not None:
            if not category.emergency:
                raise RateLimitedError(
                    f"this number filed {self.rate_limit_per_hour} or more reports in the last "
                    f"hour; retry in {retry_after} s (emergency categories are never limited)",
                    retry_after_s=retry_after,
                    detail={"limit_per_hour": self.rate_limit_per_hour},
                )
            flags.append("rate_limited")
        return flags

    def _retry_after(self, phone_hash: str, now: datetime) -> int | None:
        """Seconds until the number is under its hourly limit again; None when it is now."""
        limit = self.rate_limit_per_hour
        query = (
            sa.select(reports.c.created_at)
            .where(
                reports.c.reporter_phone_hash == phone_hash,
                reports.c.created_at > now - RATE_WINDOW,
            )
            .order_by(reports.c.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            recent = conn.execute(query).scalars().all()
        if len(recent) < limit:
            return None
        # Once the limit-th newest report leaves the window, the count drops below the limit.
        wait = (recent[-1] + RATE_WINDOW - now).total_seconds()
        return max(1, math.ceil(wait))

    def _locate(self, payload: ReportInput, caller: _Caller | None) -> _Located:
        """Where the report is: given point, else geocoded address, else registered caller.

        An explicit address beats the caller's registered home: people report what they
        see elsewhere.
        """
        if payload.location is not None:
            return _Located(payload.location.lon, payload.location.lat, "given", 1.0)
        if payload.address is not None:
            return self._geocode(payload.address)
        subscriber = caller.subscriber if caller is not None else None
        if subscriber is not None and getattr(subscriber, "lon", None) is not None:
            confidence = getattr(subscriber, "geocode_confidence", None)
            return _Located(
                float(subscriber.lon),
                float(subscriber.lat),
                "registered_caller",
                float(confidence) if confidence is not None else 1.0,
            )
        reason = (
            "the reporting phone is not a registered caller with a location"
            if caller is not None
            else "no location, address or registered reporter_phone given"
        )
        raise InputError(
            f"cannot locate the report: {reason}; send location {{lon, lat}} or an address",
            detail={"field": "location", "reason": reason},
        )

    def _geocode(self, address: str) -> _Located:
        """Geocode address text; a weak or missing match is an InputError with candidates."""
        if self.geocoder is None:
            raise InputError(
                "address geocoding is not available for this city (no address points); "
                "send location {lon, lat}",
                detail={"field": "address", "reason": "no geocoder"},
            )
        result = self.geocoder.geocode(address)
        best = getattr(result, "best", None)
        if not getattr(result, "matched", False) or best is None:
            candidates = [_candidate_dict(c) for c in getattr(result, "candidates", [])[:5]]
            raise InputError(
                f"address {address!r} did not match well enough; pick a candidate or send "
                "location {lon, lat}",
                detail={"field": "address", "reason": "weak match", "candidates": candidates},
            )
        return _Located(
            float(best.lon),
            float(best.lat),
            "geocoded",
            float(best.confidence),
            getattr(best, "label", None),
        )

    def _insert(
        self,
        report: Report,
        actor: Actor | None,
        idempotency_key: str | None,
        request_hash: str,
        keys_since: datetime,
    ) -> None:
        """Write the report, its zones, its first history entry and the idempotency key.

        An idempotent write first purges the keys created before ``keys_since`` (expired;
        the index on their creation time keeps this to the expired rows), which also frees
        an expired key being used again.
        """
        row = report.to_dict()
        row.pop("zones")
        for name in ("created_at", "updated_at", "closed_at"):
            row[name] = getattr(report, name)
        with write_transaction(self.engine) as conn:
            conn.execute(reports.insert().values(**row))
            if report.zones:
                conn.execute(
                    report_zones.insert(),
                    [
                        {"report_id": report.id, "layer": layer, "zone_id": zone_id}
                        for layer, zone_id in report.zones.items()
                    ],
                )
            conn.execute(
                report_updates.insert().values(
                    report_id=report.id,
                    at=report.created_at,
                    actor=_actor_label(actor),
                    from_status=None,
                    to_status="open",
                    note="created",
                )
            )
            if idempotency_key is not None:
                conn.execute(
                    idempotency_keys.delete().where(idempotency_keys.c.created_at < keys_since)
                )
                conn.execute(
                    idempotency_keys.insert().values(
                        key=idempotency_key,
                        api_key_id=_actor_id(actor),
                        request_hash=request_hash,
                        report_id=report.id,
                        response=report.to_dict(),
                        created_at=report.created_at,
                    )
                )

    # ---------------------------------------------------------------- read

    def get(self, report_id: str, *, actor: Actor | None) -> Report:
        """One report; ``NotFoundError`` when missing or on another channel than the key's."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(reports).where(reports.c.id == report_id, *_visible(actor))
            ).first()
            if row is None:
                raise NotFoundError(f"report {report_id!r} not found", detail={"id": report_id})
            zones = _zones_of(conn, [report_id])[report_id]
        return _report_from_row(row, zones)

    def list(self, filters: ReportFilters | None = None, *, actor: Actor | None) -> Page:
        """Reports matching ``filters`` that ``actor`` may see, newest first."""
        filters = filters or ReportFilters.parse()
        conditions = [*_visible(actor), *self._conditions(filters)]
        count = sa.select(sa.func.count()).select_from(reports).where(*conditions)
        query = (
            sa.select(reports)
            .where(*conditions)
            .order_by(reports.c.created_at.desc(), reports.c.id.desc())
            .limit(filters.limit)
            .offset(filters.offset)
        )
        with self.engine.connect() as conn:
            total = int(conn.execute(count).scalar_one())
            rows = conn.execute(query).all()
            zones = _zones_of(conn, [r.id for r in rows])
        items = [_report_from_row(r, zones[r.id]) for r in rows]
        return Page(items=items, total=total, limit=filters.limit, offset=filters.offset)

    def _conditions(self, filters: ReportFilters) -> _Conditions:
        """WHERE conditions of the filters (PostGIS ``&&`` for bbox when available)."""
        c = reports.c
        conditions: _Conditions = []
        if filters.zone is not None:
            layer, zone_id = filters.zone
            conditions.append(
                sa.exists().where(
                    report_zones.c.report_id == c.id,
                    report_zones.c.layer == layer,
                    report_zones.c.zone_id == zone_id,
                )
            )
        for name in ("category", "status", "channel"):
            value = getattr(filters, name)
            if value is not None:
                conditions.append(c[name] == value)
        if filters.statuses is not None:
            conditions.append(c.status.in_(filters.statuses))
        if filters.ids is not None:
            conditions.append(c.id.in_(filters.ids))
        if filters.created_from is not None:
            conditions.append(c.created_at >= filters.created_from)
        if filters.created_to is not None:
            conditions.append(c.created_at <= filters.created_to)
        if filters.bbox is not None:
            conditions.append(self._bbox_condition(filters.bbox))
        return conditions

    def _bbox_condition(self, bbox: tuple[float, float, float, float]) -> sa.ColumnElement[bool]:
        minlon, minlat, maxlon, maxlat = bbox
        if has_geom_column(self.engine):
            envelope = sa.func.ST_MakeEnvelope(minlon, minlat, maxlon, maxlat, 4326)
            return sa.literal_column(f"reports.{GEOM_COLUMN}").op("&&")(envelope)
        return sa.and_(reports.c.lon.between(minlon, maxlon), reports.c.lat.between(minlat, maxlat))

    # ---------------------------------------------------------------- lifecycle

    def update_status(
        self,
        report_id: str,
        status: str,
        *,
        resolution: str | None = None,
        note: str | None = None,
        actor: Actor | None,
    ) -> Report:
        """Move a report along open -> acknowledged -> in_progress -> closed.

        Also open -> closed and acknowledged -> closed; closing needs a ``resolution``;
        only an admin may reopen (closed -> open). Every change is kept in the history.

        Raises
        ------
        InputError
            Unknown status/resolution, a transition that is not allowed, closing without a
            resolution or a resolution when not closing.
        PermissionDeniedError
            Reopening by a non-admin.
        NotFoundError
            Unknown report, or one the actor may not see.
        """
        _check_status(status, resolution)
        now = self.clock()
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                sa.select(reports.c.status)
                .where(reports.c.id == report_id, *_visible(actor))
                .with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"report {report_id!r} not found", detail={"id": report_id})
            current = row.status
            _check_transition(report_id, current, status, actor)
            conn.execute(
                reports.update()
                .where(reports.c.id == report_id)
                .values(
                    status=status,
                    resolution=resolution if status == "closed" else None,
                    updated_at=now,
                    closed_at=now if status == "closed" else None,
                )
            )
            conn.execute(
                report_updates.insert().values(
                    report_id=report_id,
                    at=now,
                    actor=_actor_label(actor),
                    from_status=current,
                    to_status=status,
                    resolution=resolution,
                    note=note,
                )
            )
        return self.get(report_id, actor=actor)

    def history(self, report_id: str, *, actor: Actor | None = None) -> _History:
        """Every status change of a report, oldest first (creation included)."""
        self.get(report_id, actor=actor)  # 404 for unknown or invisible reports
        u = report_updates.c
        query = sa.select(report_updates).where(u.report_id == report_id).order_by(u.at, u.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [StatusChange(**row._mapping) for row in rows]


def _check_idempotency_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > 255:
        raise InputError(
            "Idempotency-Key must be 1 to 255 characters",
            detail={"field": "Idempotency-Key", "reason": "length"},
        )
    return key


def _replay(
    conn: sa.Connection, key: str, owner: str, request_hash: str, since: datetime
) -> Report | None:
    """The first answer for an unexpired idempotency key; conflict when the body differs."""
    row = conn.execute(
        sa.select(idempotency_keys.c.request_hash, idempotency_keys.c.response).where(
            idempotency_keys.c.key == key,
            idempotency_keys.c.api_key_id == owner,
            idempotency_keys.c.created_at >= since,
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise IdempotencyConflictError(
            f"Idempotency-Key {key!r} was already used with a different request body",
            detail={"field": "Idempotency-Key", "reason": "reused with a different body"},
        )
    return Report.from_dict(row.response)


def _candidate_dict(candidate: Any) -> dict[str, Any]:
    """A geocoder candidate as plain data for an error's detail."""
    return {
        "label": getattr(candidate, "label", None),
        "lon": getattr(candidate, "lon", None),
        "lat": getattr(candidate, "lat", None),
        "confidence": getattr(candidate, "confidence", None),
    }


def _check_status(status: str, resolution: str | None) -> None:
    if status not in STATUSES:
        raise InputError(
            f"unknown status {status!r}; statuses: {', '.join(STATUSES)}",
            detail={"field": "status", "reason": "unknown status"},
        )
    if resolution is not None and resolution not in RESOLUTIONS:
        raise InputError(
            f"unknown resolution {resolution!r}; resolutions: {', '.join(RESOLUTIONS)}",
            detail={"field": "resolution", "reason": "unknown resolution"},
        )
    if status == "closed" and resolution is None:
        raise InputError(
            f"closing a report needs a resolution ({', '.join(RESOLUTIONS)})",
            detail={"field": "resolution", "reason": "required when closing"},
        )
    if status != "closed" and resolution is not None:
        raise InputError(
            "a resolution is given only when closing a report",
            detail={"field": "resolution", "reason": "only when closing"},
        )


def _check_transition(report_id: str, current: str, status: str, actor: Actor | None) -> None:
    if (current, status) not in TRANSITIONS:
        allowed = sorted(to for frm, to in TRANSITIONS if frm == current)
        raise InputError(
            f"report {report_id!r} cannot go from {current!r} to {status!r}; "
            f"from {current!r} it may go to: {', '.join(allowed)}",
            detail={"field": "status", "reason": "transition not allowed", "current": current},
        )
    if current == "closed" and getattr(actor, "role", None) != "admin":
        raise PermissionDeniedError(
            f"only an admin may reopen closed report {report_id!r}",
            detail={"current": current},
        )


# --------------------------------------------------------------------------- bulk import


@dataclass(slots=True)
class ImportSummary:
    """What :func:`import_reports` did.

    Rows with unusable coordinates are *stored* (lon/lat empty, flag
    ``invalid_coordinates``), never dropped: analysts want the whole history.
    """

    path: str
    rows: int = 0
    stored: int = 0
    invalid_coordinates: int = 0
    invalid_created_date: int = 0
    unknown_category: int = 0
    outside_coverage: int = 0
    possible_axis_swap: int = 0
    seconds: float = 0.0
    unknown_categories: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        """Throughput of the import."""
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, throughput included."""
        data = asdict(self)
        data["rows_per_s"] = round(self.rows_per_s, 1) if self.seconds > 0 else None
        return data


def _read_header(path: Path) -> list[str]:
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{path.name}: cannot read as CSV: {exc}", detail={"file": str(path)}
        ) from exc


def _check_fields(path: Path, columns: list[str], fields: Mapping[str, str | None]) -> None:
    for option, name in fields.items():
        if name is not None and name not in columns:
            raise InputError(
                f"{path.name}: no column {name!r} ({option}); columns: {', '.join(columns)}",
                detail={"file": str(path), "field": option, "reason": f"no column {name!r}"},
            )


#: A trailing UTC offset (``Z``, ``+07:00``, ``-0500``) marks a timestamp as zone-aware.
_OFFSET_AT_END = r"(?:[zZ]|[+-]\d{2}:?\d{2})\s*$"


def _parse_group(text: pd.Series, tz: str | None, fmt: str) -> pd.Series:
    """Aware texts (``tz`` None) straight to UTC; naive ones localized to ``tz`` first."""
    if tz is None:
        return pd.to_datetime(text, errors="coerce", format=fmt, utc=True)
    parsed = pd.to_datetime(text, errors="coerce", format=fmt)
    if parsed.dt.tz is None:
        parsed = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    return parsed.dt.tz_convert("UTC")


def _parse_created(values: pd.Series, tz: str) -> pd.Series:
    """Timestamps as UTC; NaT where unparseable.

    Texts with an offset keep it; naive ones are local time in ``tz``. ISO 8601 is the fast
    path; whatever it cannot read is tried once more in any format pandas knows.
    """
    text = values.astype("string").str.strip()
    aware = text.str.contains(_OFFSET_AT_END, regex=True).fillna(False).to_numpy(dtype=bool)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    for mask, zone in ((aware, None), (~aware, tz)):
        if not mask.any():
            continue
        part = text[mask]
        parsed = _parse_group(part, zone, "ISO8601")
        retry = parsed.isna() & part.notna()
        if retry.any():
            parsed[retry] = _parse_group(part[retry], zone, "mixed")
        out[mask] = parsed
    return out


def _layer_zone_ids(router: Any, bulk: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer: zone id (object array, None when none) and status text of every row."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    status_text = np.array([str(s) for s in STATUS_CODES], dtype=object)
    for name, lookup in bulk.layers.items():
        ids = np.asarray(router.snapshot.layers[name].ids, dtype=object)
        primary = np.asarray(lookup.primary)
        zone = np.full(primary.shape[0], None, dtype=object)
        hit = primary >= 0
        zone[hit] = ids[primary[hit]]
        out[name] = (zone, status_text[np.asarray(lookup.status, dtype=np.intp)])
    return out


def _nearest_ids(router: Any, bulk: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per facility type: nearest facility id (None when none) and its distance in metres."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, lookup in bulk.nearest.items():
        ids = np.asarray(router.snapshot.facilities[kind].ids, dtype=object)
        index = np.asarray(lookup.index)[:, 0]
        fid = np.full(index.shape[0], None, dtype=object)
        hit = index >= 0
        fid[hit] = ids[index[hit]]
        dist = np.round(np.asarray(lookup.distance_m, dtype=float)[:, 0], 1)
        out[kind] = (fid, dist)
    return out


@dataclass(slots=True)
class _Chunk:
    """One routed chunk as column arrays (length n), ready to become rows."""

    n: int
    category: list[str]
    agency: list[str | None]
    description: list[str | None]
    lon: list[float | None]
    lat: list[float | None]
    created_at: list[datetime]
    reasons: list[str | None]
    zones: dict[str, tuple[np.ndarray, np.ndarray]]
    nearest: dict[str, tuple[np.ndarray, np.ndarray]]
    flags: list[list[str]]


def _route_chunk(
    frame: pd.DataFrame,
    router: Any,
    *,
    fields: Mapping[str, str | None],
    categories: Mapping[str, CategoryRoute],
    category_map: Mapping[str, str],
    tz: str,
    now: datetime,
    summary: ImportSummary,
) -> _Chunk:
    """Route one chunk in bulk (vectorized) and count its flags into ``summary``."""
    n = len(frame)
    lon = pd.to_numeric(frame[fields["lon"]], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(frame[fields["lat"]], errors="coerce").to_numpy(dtype=float)
    bulk = router.route_many(lon, lat, k=1)
    valid = np.asarray(bulk.valid, dtype=bool)
    zones = _layer_zone_ids(router, bulk)

    raw = frame[fields["category"]].astype("string").fillna("").str.strip()
    mapped = raw.map(lambda v: category_map.get(v, v)).str.slice(0, 120).astype(object)
    known = mapped.isin(list(categories)).to_numpy()
    created = _parse_created(frame[fields["created"]], tz)
    bad_created = created.isna().to_numpy()

    # As the router's warning: outside coverage = no zone in any layer.
    outside = valid.copy()
    for zone, _ in zones.values():
        outside &= zone == None  # noqa: E711 - elementwise on an object array
    flag_columns = {
        "invalid_coordinates": ~valid,
        "unknown_category": ~known,
        "outside_coverage": outside,
        "possible_axis_swap": np.asarray(bulk.axis_swap, dtype=bool),
        "invalid_created_date": bad_created,
    }
    _count_flags(summary, flag_columns, mapped[~known])
    agency_of = {code: route.agency for code, route in categories.items()}
    description = (
        frame[fields["description"]].astype("string").to_numpy(dtype=object, na_value=None)
        if fields.get("description")
        else np.full(n, None, dtype=object)
    )
    return _Chunk(
        n=n,
        category=mapped.tolist(),
        agency=[agency_of.get(c) for c in mapped.tolist()],
        description=description.tolist(),
        lon=np.where(valid, lon, np.nan).astype(object).tolist(),
        lat=np.where(valid, lat, np.nan).astype(object).tolist(),
        created_at=np.where(
            bad_created, np.array(now, dtype=object), created.dt.to_pydatetime()
        ).tolist(),
        reasons=list(bulk.reasons),
        zones=zones,
        nearest=_nearest_ids(router, bulk),
        flags=_row_flags(flag_columns, n),
    )


def _count_flags(
    summary: ImportSummary, flags: Mapping[str, np.ndarray], unknown: pd.Series
) -> None:
    summary.invalid_coordinates += int(flags["invalid_coordinates"].sum())
    summary.unknown_category += int(flags["unknown_category"].sum())
    summary.outside_coverage += int(flags["outside_coverage"].sum())
    summary.possible_axis_swap += int(flags["possible_axis_swap"].sum())
    summary.invalid_created_date += int(flags["invalid_created_date"].sum())
    for value, count in unknown.value_counts().items():
        key = str(value)
        summary.unknown_categories[key] = summary.unknown_categories.get(key, 0) + int(count)


def _row_flags(columns: Mapping[str, np.ndarray], n: int) -> list[list[str]]:
    """Per-row flag lists from boolean columns."""
    out: list[list[str]] = [[] for _ in range(n)]
    for name, mask in columns.items():
        for i in np.flatnonzero(mask).tolist():
            out[i].append(name)
    return out


def _chunk_rows(
    chunk: _Chunk, *, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Report rows (JSON columns already serialized) and report_zones rows of a chunk."""
    ids = [new_report_id() for _ in range(chunk.n)]
    zone_lists = {name: (z.tolist(), st.tolist()) for name, (z, st) in chunk.zones.items()}
    near_lists = {kind: (f.tolist(), d.tolist()) for kind, (f, d) in chunk.nearest.items()}
    dumps = orjson.dumps
    rows = []
    for i in range(chunk.n):
        decision = {
            "source": "import",
            "zones": {
                name: {"zone_id": zone[i], "status": status_text[i]}
                for name, (zone, status_text) in zone_lists.items()
            },
            "responders": {
                kind: [{"facility_id": fid[i], "distance_m": dist[i]}] if fid[i] is not None else []
                for kind, (fid, dist) in near_lists.items()
            },
            "agency": chunk.agency[i],
            "invalid_reason": chunk.reasons[i],
        }
        lon = chunk.lon[i]
        rows.append(
            {
                "id": ids[i],
                "category": chunk.category[i],
                "description": chunk.description[i],
                "lon": None if lon != lon else lon,  # NaN -> NULL
                "lat": None if lon != lon else chunk.lat[i],
                "decision": dumps(decision).decode(),
                "flags": dumps(chunk.flags[i]).decode(),
                "created_at": chunk.created_at[i],
                "updated_at": now,
            }
        )
    zone_rows = [
        {"report_id": ids[i], "layer": name, "zone_id": str(zone[i])}
        for name, (zone, _) in chunk.zones.items()
        for i in np.flatnonzero(zone != None).tolist()  # noqa: E711 - elementwise
    ]
    return rows, zone_rows


#: Columns an imported row fills itself; the others are NULL or constant per import.
_BULK_COLUMNS: tuple[str, ...] = (
    "id",
    "category",
    "description",
    "lon",
    "lat",
    "decision",
    "flags",
    "created_at",
    "updated_at",
)


def _bulk_report_insert(dialect: str, *, channel: str, status: str) -> sa.Insert:
    """INSERT into reports for bulk imports: few per-row parameters, JSON as text.

    json.dumps per row inside SQLAlchemy costs more than routing, so the JSON columns come
    serialized by orjson (cast to JSONB on PostgreSQL; SQLite keeps JSON as text anyway).
    Constant columns are literals: ``channel`` and ``status`` were checked against fixed
    lists, so they cannot carry SQL.
    """
    values: dict[str, Any] = {}
    for name in _BULK_COLUMNS:
        column = reports.c[name]
        if name in ("decision", "flags"):
            param = sa.bindparam(name, type_=sa.Text())
            values[name] = sa.cast(param, postgresql.JSONB()) if dialect == "postgresql" else param
        else:
            values[name] = sa.bindparam(name, type_=column.type)
    for name, value in (("channel", channel), ("status", status), ("location_source", "imported")):
        values[name] = sa.literal_column(f"'{value}'", type_=sa.String())
    return reports.insert().values(values)


def import_reports(
    path: str | Path,
    router: Any,
    engine: sa.Engine,
    *,
    lon_field: str,
    lat_field: str,
    category_field: str,
    created_field: str,
    channel: str = "import",
    category_map: Mapping[str, str] | None = None,
    chunk_size: int = 50_000,
    description_field: str | None = None,
    timezone: str = "UTC",
    status: str = "closed",
    progress: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Load historic reports (a 311 export, CSV or CSV.gz) in bulk.

    Each chunk is routed with ``router.route_many`` (vectorized) and written with one
    executemany per table, in one transaction per chunk.

    Parameters
    ----------
    path
        CSV or CSV.gz file.
    router
        The city's ``Router``.
    engine
        The store's engine (migration 0002 applied).
    lon_field, lat_field, category_field, created_field
        Column names; ``created_field`` holds timestamps (naive ones are local ``timezone``).
    channel
        Channel stored on every row ("import" by default).
    category_map
        Source category -> profile code. Codes the profile does not know are stored as they
        are, with the flag ``unknown_category``.
    chunk_size
        Rows per chunk (and per transaction).
    description_field
        Optional column stored as the description.
    timezone
        IANA zone of naive timestamps (e.g. ``America/New_York``).
    status
        Status of the imported reports (history: ``closed`` by default, no resolution).
    progress
        Called with the running summary after each chunk.

    Returns
    -------
    ImportSummary
        Counts, seconds and rows/s. Rows with bad coordinates are stored, flagged
        ``invalid_coordinates`` with empty lon/lat, and counted.
    """
    source = Path(path)
    if status not in STATUSES:
        raise InputError(f"unknown status {status!r}; statuses: {', '.join(STATUSES)}")
    if channel not in CHANNELS:
        raise InputError(f"unknown channel {channel!r}; channels: {', '.join(CHANNELS)}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown timezone {timezone!r}: use an IANA name such as America/New_York",
            detail={"field": "timezone"},
        ) from None
    fields: dict[str, str | None] = {
        "lon": lon_field,
        "lat": lat_field,
        "category": category_field,
        "created": created_field,
        "description": description_field,
    }
    columns = _read_header(source)
    _check_fields(
        source,
        columns,
        {f"--{k}-field": v for k, v in fields.items()},
    )
    categories = {c.code: router.category(c.code) for c in router.snapshot.profile.categories}
    summary = ImportSummary(path=str(source))
    started = time.perf_counter()
    usecols = [v for v in fields.values() if v is not None]
    reader = pd.read_csv(
        source, usecols=usecols, dtype=str, chunksize=chunk_size, keep_default_na=True
    )
    insert = _bulk_report_insert(engine.dialect.name, channel=channel, status=status)
    for frame in reader:
        now = _utcnow()
        chunk = _route_chunk(
            frame,
            router,
            fields=fields,
            categories=categories,
            category_map=category_map or {},
            tz=timezone,
            now=now,
            summary=summary,
        )
        rows, zone_rows = _chunk_rows(chunk, now=now)
        with write_transaction(engine) as conn:
            if rows:
                conn.execute(insert, rows)
            if zone_rows:
                conn.execute(report_zones.insert(), zone_rows)
        summary.rows += len(frame)
        summary.stored += len(rows)
        summary.seconds = time.perf_counter() - started
        if progress is not None:
            progress(summary)
    summary.seconds = time.perf_counter() - started
    return summary
