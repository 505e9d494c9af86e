"""The caller registry: who a phone number belongs to, where they live, who serves them.

Phone numbers are stored only as an HMAC (lookup) and a Fernet token (display); names and
addresses only as Fernet tokens. Nothing here logs a number, a name or an address.
"""

from __future__ import annotations

import builtins
import csv
import io
import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import sqlalchemy as sa

from geo_router.city import coords
from geo_router.errors import GeoRouterError, InputError, InvalidPhoneError, NotFoundError
from geo_router.intake.phones import mask_phone, normalize_phone
from geo_router.intake.secrets import Secrets
from geo_router.store.engine import write_transaction
from geo_router.store.schema import VERIFICATION_STATUSES, new_token_id, subscribers, utcnow

log = logging.getLogger(__name__)

#: Responders per facility type kept with a subscriber.
RESPONDERS_K = 3
#: Largest page ``list`` returns.
MAX_PAGE = 500
#: Largest offset a page may start at (beyond any real registry; bounded for SQL).
MAX_OFFSET = 2**31 - 1
#: Rows one CSV import may hold.
MAX_IMPORT_ROWS = 100_000
#: Columns a subscriber CSV may have (``phone`` is required).
CSV_COLUMNS: tuple[str, ...] = ("phone", "name", "address", "lon", "lat")

_TEXT_LIMITS = {"name": 200, "address": 500, "verification_method": 64}
_UPDATABLE = frozenset(
    {
        "phone",
        "name",
        "address",
        "lon",
        "lat",
        "verification_status",
        "verification_method",
        "consent_at",
    }
)


class _Geocoder(Protocol):
    def geocode(self, text: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A registered caller. ``phone`` is masked unless it was read with ``reveal=True``.

    Personal fields are left out of ``repr`` so a stray log line cannot leak them.
    """

    id: str
    phone: str = field(repr=False)
    name: str | None = field(repr=False)
    address: str | None = field(repr=False)
    lon: float | None
    lat: float | None
    location_source: str | None  #: "given" | "geocoded" | None
    geocode_confidence: float | None
    zones: dict[str, Any]  #: per layer, the ZoneMatch resolved at registration (as JSON)
    responders: dict[str, Any]  #: per facility type, the nearest responders (as JSON)
    verification_status: str
    verification_method: str | None
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime
    phone_revealed: bool = False


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """The call-taker's answer for an incoming number.

    Unknown numbers have ``registered=False`` and no location; zones and responders of a
    registered caller are recomputed with the current router (the newest boundaries).
    """

    registered: bool
    phone: str = field(repr=False)  #: masked
    subscriber_id: str | None = None
    name: str | None = field(default=None, repr=False)
    address: str | None = field(default=None, repr=False)
    location: dict[str, Any] | None = None  #: lon, lat, source, geocode_confidence
    zones: dict[str, Any] = field(default_factory=dict)
    responders: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    verification_status: str | None = None
    nuisance: dict[str, Any] = field(
        default_factory=dict
    )  #: reports_made, false_reports, last_seen


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in one CSV row (the header is row 1)."""

    row: int
    field: str | None
    message: str


@dataclass(slots=True)
class ImportSummary:
    """What a CSV import did, or would do (``dry_run``)."""

    rows: int = 0  #: data rows read
    valid: int = 0  #: rows that would be / were registered
    created: int = 0  #: rows registered (0 on dry runs and refused imports)
    skipped: int = 0  #: invalid rows left out (``skip_invalid=True``)
    dry_run: bool = False
    committed: bool = False
    errors: list[RowError] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  #: new subscriber ids, in row order


@dataclass(frozen=True, slots=True)
class _Located:
    """Where a subscriber is and how we know."""

    lon: float
    lat: float
    source: str
    confidence: float | None


def _jsonable(value: Any) -> Any:
    """Plain JSON data: dataclasses to dicts, enums to values, non-finite floats to None.

    PostgreSQL JSONB refuses NaN, and a NaN distance means "no such responder" anyway.
    """
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str):
        return str(value)  # StrEnum -> its value
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def _route_json(result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Zones and responders of a RouteResult as JSON data."""
    return _jsonable(result.zones), _jsonable(result.responders)


def _clean_text(value: Any, name: str, row: int | None = None) -> str | None:
    """Stripped text within its length limit; empty means None."""
    if value is None:
        return None
    where = f"row {row}: " if row is not None else ""
    if not isinstance(value, str):
        raise InputError(
            f"{where}{name} must be text", detail={"field": name, "reason": "not text"}
        )
    text = value.strip()
    limit = _TEXT_LIMITS[name]
    if len(text) > limit:
        raise InputError(
            f"{where}{name} is longer than {limit} characters",
            detail={"field": name, "reason": f"longer than {limit} characters"},
        )
    return text or None


def _check_verification(status: Any) -> str:
    if status not in VERIFICATION_STATUSES:
        raise InputError(
            f"verification_status must be one of {', '.join(VERIFICATION_STATUSES)}",
            detail={"field": "verification_status", "allowed": list(VERIFICATION_STATUSES)},
        )
    return str(status)


def _check_consent(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InputError(
            "consent_at must be a timezone-aware date-time",
            detail={"field": "consent_at", "reason": "not a timezone-aware date-time"},
        )
    return value


def _duplicate(row: int | None = None, other_row: int | None = None) -> InputError:
    where = f"row {row}: " if row is not None else ""
    of = f" (row {other_row})" if other_row is not None else ""
    return InputError(
        f"{where}this phone number is already registered{of}",
        detail={"code": "duplicate_phone", "field": "phone", "reason": "already registered"},
    )


class SubscriberRegistry:
    """Register callers and answer "who is calling?".

    Parameters
    ----------
    store
        The opened ``Store`` (or anything with ``.engine``), or an ``Engine``.
    secrets
        Pepper and encryption key.
    router_provider
        Zero-argument callable returning the current ``Router`` (boundaries may be swapped);
        a ``Router`` itself is accepted too.
    geocoder
        Something with ``.geocode(text) -> GeocodeResult``; None disables address lookup.
    region
        Region for national phone numbers.
    """

    def __init__(
        self,
        store: Any,
        secrets: Secrets,
        router_provider: Callable[[], Any],
        geocoder: _Geocoder | None = None,
        *,
        region: str = "ID",
    ) -> None:
        self.engine: sa.Engine = store if isinstance(store, sa.Engine) else store.engine
        self.secrets = secrets
        # A Router has no __call__: wrap it, so callers may hand over either.
        self.router_provider: Callable[[], Any] = (
            router_provider if callable(router_provider) else lambda: router_provider
        )
        self.geocoder = geocoder
        self.region = region

    # -- reading ---------------------------------------------------------------------------

    def get(self, subscriber_id: str, *, reveal: bool = False) -> Subscriber:
        """One subscriber by id; NotFoundError when unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.id == subscriber_id)
            ).first()
        if row is None:
            raise NotFoundError(
                f"no subscriber with id {subscriber_id!r}", detail={"id": subscriber_id}
            )
        return self._subscriber(row, reveal)

    def get_by_phone(self, phone: str, *, reveal: bool = False) -> Subscriber | None:
        """The subscriber with this phone number (any format), or None when not registered.

        Raises
        ------
        InvalidPhoneError
            The number does not parse.
        """
        row = self._row_by_hash(self._hash(phone))
        return None if row is None else self._subscriber(row, reveal)

    def list(self, limit: int = 50, offset: int = 0, *, reveal: bool = False) -> list[Subscriber]:
        """A page of subscribers, oldest first."""
        if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
            raise InputError(
                f"limit must be 1..{MAX_PAGE} and offset 0..{MAX_OFFSET}",
                detail={"field": "limit" if not 1 <= limit <= MAX_PAGE else "offset"},
            )
        query = (
            sa.select(subscribers)
            .order_by(subscribers.c.created_at, subscribers.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            return [self._subscriber(row, reveal) for row in conn.execute(query)]

    def count(self) -> int:
        """How many subscribers are registered."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar_one()
            )

    def caller(self, phone: str) -> CallerInfo:
        """Who is calling: location, zones and responders now, and the nuisance record.

        Never fails for an unknown number (``registered=False``); a malformed number raises
        InvalidPhoneError.
        """
        e164 = normalize_phone(phone, self.region)
        phone_hash = self.secrets.hash_phone(e164)
        nuisance = self._nuisance(phone_hash)
        row = self._row_by_hash(phone_hash)
        if row is None:
            return CallerInfo(registered=False, phone=mask_phone(e164), nuisance=nuisance)
        zones: dict[str, Any] = {}
        responders: dict[str, Any] = {}
        warnings: list[str] = []
        location = None
        if row.lon is not None and row.lat is not None:
            result = self.router_provider().route(row.lon, row.lat, k=RESPONDERS_K)
            zones, responders = _route_json(result)
            warnings = [str(w) for w in result.warnings]
            location = {
                "lon": row.lon,
                "lat": row.lat,
                "source": row.location_source,
                "geocode_confidence": row.geocode_confidence,
            }
        return CallerInfo(
            registered=True,
            phone=mask_phone(e164),
            subscriber_id=row.id,
            name=self._open(row.name_enc),
            address=self._open(row.address_enc),
            location=location,
            zones=zones,
            responders=responders,
            warnings=warnings,
            verification_status=row.verification_status,
            nuisance=nuisance,
        )

    # -- writing ---------------------------------------------------------------------------

    def create(
        self,
        phone: str,
        *,
        name: str | None = None,
        address: str | None = None,
        lon: float | None = None,
        lat: float | None = None,
        verification_status: str = "unverified",
        verification_method: str | None = None,
        consent_at: datetime | None = None,
        reveal: bool = False,
    ) -> Subscriber:
        """Register a caller; the zones and nearest responders are resolved now and stored.

        A given location wins; else the address is geocoded (a confident match only).

        Raises
        ------
        InvalidPhoneError
            The number does not parse (``detail['reason']``).
        InputError
            Duplicate number (``detail['code'] == 'duplicate_phone'``); no location and no
            geocodable address; a weak address match (``detail['candidates']``); bad fields.
        InvalidCoordinatesError
            Unusable lon/lat.
        """
        e164 = normalize_phone(phone, self.region)
        name = _clean_text(name, "name")
        address = _clean_text(address, "address")
        values = {
            "verification_status": _check_verification(verification_status),
            "verification_method": _clean_text(verification_method, "verification_method"),
            "consent_at": _check_consent(consent_at),
        }
        located = self._locate(lon, lat, address)
        zones, responders = _route_json(
            self.router_provider().route(located.lon, located.lat, k=RESPONDERS_K)
        )
        now = utcnow()
        record = {
            "id": new_token_id(),
            **self._sealed(e164, name, address),
            **self._location_values(located),
            "zones": zones,
            "responders": responders,
            **values,
            "created_at": now,
            "updated_at": now,
        }
        with write_transaction(self.engine) as conn:
            self._insert(conn, [record])
        log.info("registered subscriber %s (%s)", record["id"], located.source)
        return self.get(record["id"], reveal=reveal)

    def update(self, subscriber_id: str, *, reveal: bool = False, **fields: Any) -> Subscriber:
        """Change fields of a subscriber; a new location or address re-resolves the zones.

        ``lon`` and ``lat`` come together (both None clears a given location). A new address
        is geocoded unless the subscriber has a given location, which wins.

        Raises
        ------
        NotFoundError, InputError, InvalidPhoneError, InvalidCoordinatesError
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise InputError(
                f"cannot update {', '.join(sorted(unknown))}; updatable: "
                f"{', '.join(sorted(_UPDATABLE))}",
                detail={"field": sorted(unknown)[0], "reason": "not updatable"},
            )
        current = self.get(subscriber_id, reveal=True)
        values: dict[str, Any] = {}
        if "phone" in fields:
            e164 = normalize_phone(fields["phone"], self.region)
            values["phone_hash"] = self.secrets.hash_phone(e164)
            values["phone_enc"] = self.secrets.encrypt(e164)
        for name in ("name", "address"):
            if name in fields:
                text = _clean_text(fields[name], name)
                values[f"{name}_enc"] = None if text is None else self.secrets.encrypt(text)
        if "verification_method" in fields:
            values["verification_method"] = _clean_text(
                fields["verification_method"], "verification_method"
            )
        if "verification_status" in fields:
            values["verification_status"] = _check_verification(fields["verification_status"])
        if "consent_at" in fields:
            values["consent_at"] = _check_consent(fields["consent_at"])
        located = self._relocate(current, fields)
        if located is not None:
            values.update(self._location_values(located))
            zones, responders = _route_json(
                self.router_provider().route(located.lon, located.lat, k=RESPONDERS_K)
            )
            values.update(zones=zones, responders=responders)
        values["updated_at"] = utcnow()
        with write_transaction(self.engine) as conn:
            if "phone_hash" in values:
                taken = conn.execute(
                    sa.select(subscribers.c.id).where(
                        subscribers.c.phone_hash == values["phone_hash"],
                        subscribers.c.id != subscriber_id,
                    )
                ).first()
                if taken is not None:
                    raise _duplicate()
            conn.execute(
                subscribers.update().where(subscribers.c.id == subscriber_id).values(**values)
            )
        log.info("updated subscriber %s (%s)", subscriber_id, ", ".join(sorted(fields)))
        return self.get(subscriber_id, reveal=reveal)

    def delete(self, subscriber_id: str) -> None:
        """Remove a subscriber; NotFoundError when unknown."""
        with write_transaction(self.engine) as conn:
            gone = conn.execute(subscribers.delete().where(subscribers.c.id == subscriber_id))
        if gone.rowcount == 0:
            raise NotFoundError(
                f"no subscriber with id {subscriber_id!r}", detail={"id": subscriber_id}
            )
        log.info("deleted subscriber %s", subscriber_id)

    def import_csv(
        self,
        file_or_bytes: bytes | str | os.PathLike[str] | IO[bytes] | IO[str],
        *,
        dry_run: bool = False,
        skip_invalid: bool = False,
    ) -> ImportSummary:
        """Register many callers from CSV (columns ``phone,name,address,lon,lat``).

        Parameters
        ----------
        file_or_bytes
            CSV bytes, CSV text (``str``), a path, or an open file.
        dry_run
            Check and resolve every row, write nothing.
        skip_invalid
            Register the valid rows even when some rows fail; by default the import is
            atomic: any failing row means nothing is written.

        Returns
        -------
        ImportSummary
            Per-row errors name the row (header = row 1) and the field.
        """
        records = _read_csv(file_or_bytes)
        summary = ImportSummary(rows=len(records), dry_run=dry_run)
        prepared = self._prepare_rows(records, summary.errors)
        summary.valid = len(prepared)
        summary.skipped = summary.rows - summary.valid
        if dry_run or not prepared or (summary.errors and not skip_invalid):
            return summary
        try:
            with write_transaction(self.engine) as conn:
                self._insert(conn, prepared)
        except InputError as exc:  # a number registered meanwhile by someone else
            summary.errors.append(RowError(0, "phone", exc.message))
            return summary
        summary.created = len(prepared)
        summary.committed = True
        summary.ids = [r["id"] for r in prepared]
        log.info("imported %d subscribers (%d rows skipped)", summary.created, summary.skipped)
        return summary

    # -- helpers ---------------------------------------------------------------------------

    def _hash(self, phone: str) -> str:
        return self.secrets.hash_phone(normalize_phone(phone, self.region))

    def _row_by_hash(self, phone_hash: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(subscribers).where(subscribers.c.phone_hash == phone_hash)
            ).first()

    def _open(self, token: str | None) -> str | None:
        return None if token is None else self.secrets.decrypt(token)

    def _sealed(self, e164: str, name: str | None, address: str | None) -> dict[str, Any]:
        """The phone as HMAC + token, name and address as tokens."""
        return {
            "phone_hash": self.secrets.hash_phone(e164),
            "phone_enc": self.secrets.encrypt(e164),
            "name_enc": None if name is None else self.secrets.encrypt(name),
            "address_enc": None if address is None else self.secrets.encrypt(address),
        }

    @staticmethod
    def _location_values(located: _Located | None) -> dict[str, Any]:
        if located is None:
            return {"lon": None, "lat": None, "location_source": None, "geocode_confidence": None}
        return {
            "lon": located.lon,
            "lat": located.lat,
            "location_source": located.source,
            "geocode_confidence": located.confidence,
        }

    def _subscriber(self, row: Any, reveal: bool) -> Subscriber:
        e164 = self.secrets.decrypt(row.phone_enc)
        return Subscriber(
            id=row.id,
            phone=e164 if reveal else mask_phone(e164),
            name=self._open(row.name_enc),
            address=self._open(row.address_enc),
            lon=row.lon,
            lat=row.lat,
            location_source=row.location_source,
            geocode_confidence=row.geocode_confidence,
            zones=row.zones or {},
            responders=row.responders or {},
            verification_status=row.verification_status,
            verification_method=row.verification_method,
            consent_at=row.consent_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            phone_revealed=reveal,
        )

    def _insert(self, conn: sa.Connection, records: builtins.list[dict[str, Any]]) -> None:
        """Insert rows; a number already registered is InputError(duplicate_phone)."""
        hashes = [r["phone_hash"] for r in records]
        taken = self._taken(conn, hashes)
        if taken:
            raise _duplicate()
        try:
            conn.execute(subscribers.insert(), records)
        except sa.exc.IntegrityError:  # lost a race with a concurrent registration
            raise _duplicate() from None

    @staticmethod
    def _taken(conn: sa.Connection, hashes: Iterable[str]) -> set[str]:
        hashes = builtins.list(hashes)
        found: set[str] = set()
        for start in range(0, len(hashes), 500):  # bound the IN list
            chunk = hashes[start : start + 500]
            found.update(
                conn.execute(
                    sa.select(subscribers.c.phone_hash).where(subscribers.c.phone_hash.in_(chunk))
                ).scalars()
            )
        return found

    def _locate(self, lon: Any, lat: Any, address: str | None, row: int | None = None) -> _Located:
        """A given location, else a confident geocode of the address."""
        where = f"row {row}: " if row is not None else ""
        if (lon is None) != (lat is None):
            missing = "lat" if lat is None else "lon"
            raise InputError(
                f"{where}lon and lat go together ({missing} is missing)",
                detail={"field": missing, "reason": "missing"},
            )
        if lon is not None:
            lon_f, lat_f = coords.require_lonlat(lon, lat, row=row)
            return _Located(lon_f, lat_f, "given", None)
        if address is None:
            raise InputError(
                f"{where}location or a geocodable address is required",
                detail={"field": "location", "reason": "missing"},
            )
        return self._geocode(address, where)

    def _geocode(self, address: str, where: str = "") -> _Located:
        if self.geocoder is None:
            raise InputError(
                f"{where}location or a geocodable address is required "
                "(this city has no address data to geocode with)",
                detail={"field": "location", "reason": "no geocoder"},
            )
        result = self.geocoder.geocode(address)
        best = getattr(result, "best", None)
        if getattr(result, "matched", False) and best is not None:
            return _Located(float(best.lon), float(best.lat), "geocoded", float(best.confidence))
        candidates = [
            {
                "label": getattr(c, "label", None),
                "lon": float(c.lon),
                "lat": float(c.lat),
                "confidence": float(c.confidence),
            }
            for c in (getattr(result, "candidates", None) or [])[:5]
        ]
        if candidates:
            raise InputError(
                f"{where}the address matched no place confidently; give a location or "
                f"one of {len(candidates)} candidates",
                detail={"field": "address", "reason": "weak match", "candidates": candidates},
            )
        raise InputError(
            f"{where}location or a geocodable address is required (the address matched nothing)",
            detail={"field": "address", "reason": "no match"},
        )

    def _relocate(self, current: Subscriber, fields: dict[str, Any]) -> _Located | None:
        """The new location an update implies, or None when it keeps the current one."""
        if "lon" in fields or "lat" in fields:
            lon, lat = fields.get("lon"), fields.get("lat")
            address = _clean_text(fields.get("address", current.address), "address")
            return self._locate(lon, lat, address)
        if "address" in fields and current.location_source != "given":
            return self._locate(None, None, _clean_text(fields["address"], "address"))
        return None

    def _nuisance(self, phone_hash: str) -> dict[str, Any]:
        """Reports and false reports from this number (zeros before report intake exists)."""
        try:
            from geo_router.intake.reports import nuisance_record
        except ImportError:
            return {"reports_made": 0, "false_reports": 0, "last_seen": None}
        return dict(nuisance_record(self.engine, phone_hash))

    def _prepare_rows(
        self, records: builtins.list[dict[str, Any]], errors: builtins.list[RowError]
    ) -> builtins.list[dict[str, Any]]:
        """Check, locate and route every CSV row; returns the rows ready to insert."""
        rows = _RowChecks(len(records), errors)
        e164s = self._row_phones(records, rows)
        texts = [self._row_texts(rec, i, rows) for i, rec in enumerate(records)]
        lon, lat, source, confidence = self._row_locations(records, texts, rows)
        good = np.flatnonzero(rows.ok).tolist()
        if not good:
            return []
        router = self.router_provider()
        bulk = router.route_many(lon[good], lat[good], k=RESPONDERS_K)
        results = router.results(bulk, k=RESPONDERS_K)
        now = utcnow()
        prepared = []
        for i, result in zip(good, results, strict=True):
            zones, responders = _route_json(result)
            name, address = texts[i]
            prepared.append(
                {
                    "id": new_token_id(),
                    **self._sealed(e164s[i] or "", name, address),
                    "lon": float(lon[i]),
                    "lat": float(lat[i]),
                    "location_source": source[i],
                    "geocode_confidence": confidence[i],
                    "zones": zones,
                    "responders": responders,
                    "verification_status": "unverified",
                    "verification_method": None,
                    "consent_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        errors.sort(key=lambda e: e.row)
        return prepared

    def _row_phones(
        self, records: builtins.list[dict[str, Any]], rows: _RowChecks
    ) -> builtins.list[str | None]:
        """E.164 per row; bad numbers, repeats within the file and registered ones fail."""
        e164s: builtins.list[str | None] = [None] * len(records)
        first_row: dict[str, int] = {}
        for i, rec in enumerate(records):
            try:
                e164 = normalize_phone(rec.get("phone") or "", self.region)
            except InvalidPhoneError as exc:
                rows.fail(i, exc, "phone")
                continue
            e164s[i] = e164
            if e164 in first_row:
                rows.fail(i, _duplicate(rows.number(i), first_row[e164]), "phone")
            else:
                first_row[e164] = rows.number(i)
        hashes = [self.secrets.hash_phone(p) if p else "" for p in e164s]
        with self.engine.connect() as conn:
            taken = self._taken(conn, [h for h in hashes if h])
        for i, phone_hash in enumerate(hashes):
            if rows.ok[i] and phone_hash in taken:
                rows.fail(i, _duplicate(rows.number(i)), "phone")
        return e164s

    @staticmethod
    def _row_texts(rec: dict[str, Any], i: int, rows: _RowChecks) -> tuple[str | None, str | None]:
        """(name, address) of one row, cleaned; too long fails the row."""
        try:
            return (
                _clean_text(rec.get("name"), "name", rows.number(i)),
                _clean_text(rec.get("address"), "address", rows.number(i)),
            )
        except InputError as exc:
            rows.fail(i, exc, None)
            return None, None

    def _row_locations(
        self,
        records: builtins.list[dict[str, Any]],
        texts: builtins.list[tuple[str | None, str | None]],
        rows: _RowChecks,
    ) -> tuple[np.ndarray, np.ndarray, builtins.list[str | None], builtins.list[float | None]]:
        """lon, lat, source and confidence per row: given coordinates checked in bulk, the
        rest geocoded (text work, one address at a time)."""
        n = len(records)
        lon_raw = np.array([(r.get("lon") or "").strip() for r in records], dtype=object)
        lat_raw = np.array([(r.get("lat") or "").strip() for r in records], dtype=object)
        has_lon, has_lat = lon_raw != "", lat_raw != ""
        given, half = has_lon & has_lat, has_lon ^ has_lat
        valid, reasons = coords.check_lonlat(
            np.where(given, lon_raw, "0"), np.where(given, lat_raw, "0")
        )
        good_given = given & np.asarray(valid, dtype=bool)
        lon, lat = np.full(n, np.nan), np.full(n, np.nan)
        lon[good_given] = lon_raw[good_given].astype(float)
        lat[good_given] = lat_raw[good_given].astype(float)
        source: builtins.list[str | None] = ["given" if g else None for g in good_given.tolist()]
        confidence: builtins.list[float | None] = [None] * n
        for i in np.flatnonzero(given & ~good_given).tolist():
            rows.fail(i, str(reasons[i]), "lon")
        for i in np.flatnonzero(half).tolist():
            rows.fail(i, "lon and lat go together (one is empty)", "lat" if has_lon[i] else "lon")
        for i in np.flatnonzero(rows.ok & ~given & ~half).tolist():
            try:
                located = self._locate(None, None, texts[i][1], row=rows.number(i))
            except InputError as exc:
                rows.fail(i, exc, "address")
                continue
            lon[i], lat[i] = located.lon, located.lat
            source[i], confidence[i] = located.source, located.confidence
        return lon, lat, source, confidence


class _RowChecks:
    """Which CSV rows are still good, and the errors of the others (header = row 1)."""

    def __init__(self, n: int, errors: list[RowError]) -> None:
        self.ok = np.ones(n, dtype=bool)
        self.errors = errors

    @staticmethod
    def number(i: int) -> int:
        """The row number of record ``i`` (the header is row 1)."""
        return i + 2

    def fail(self, i: int, problem: GeoRouterError | str, field_name: str | None) -> None:
        """Mark record ``i`` failed, naming its row and field."""
        self.ok[i] = False
        row = self.number(i)
        if isinstance(problem, str):
            message = problem
        else:
            message = problem.message
            field_name = problem.detail.get("field", field_name)
        if not message.startswith(f"row {row}"):
            message = f"row {row}: {message}"
        self.errors.append(RowError(row, field_name, message))


def _read_csv(source: bytes | str | os.PathLike[str] | IO[bytes] | IO[str]) -> list[dict[str, Any]]:
    """Rows of a subscriber CSV as dicts (BOM tolerated); InputError naming the problem."""
    if isinstance(source, os.PathLike):
        data: bytes | str = Path(source).read_bytes()
    elif isinstance(source, bytes | bytearray | str):
        data = bytes(source) if isinstance(source, bytearray) else source
    else:
        data = source.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"the CSV is not UTF-8 text (byte {exc.start})", detail={"field": "file"}
            ) from None
    reader = csv.DictReader(io.StringIO(data.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "phone" not in header:
        raise InputError(
            f"the CSV needs a header with a phone column; columns: {', '.join(CSV_COLUMNS)}",
            detail={"field": "phone", "reason": "missing column"},
        )
    reader.fieldnames = header
    rows = []
    for count, rec in enumerate(reader, start=1):
        if count > MAX_IMPORT_ROWS:
            raise InputError(
                f"the CSV has more than {MAX_IMPORT_ROWS} rows; split it",
                detail={"field": "file", "limit": MAX_IMPORT_ROWS},
            )
        rows.append({k: v for k, v in rec.items() if k in CSV_COLUMNS})
    return rows
