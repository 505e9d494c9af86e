"""Reports in the store: every SQL statement of report intake, with its dialect branches.

:class:`ReportsRepo` reads and writes the report tables of :mod:`geo_router.store.schema`
and hands back typed records (:class:`Report`, :class:`StatusChange`,
:class:`NuisanceRecord`). It checks nothing about the domain: the report service decides
what may be written (channels, transitions, limits) and this module only makes each write
one transaction.

A report located at a registered caller's home keeps its point and the decision routed from
it only sealed (``home_enc``, :mod:`geo_router.store.sealed_homes`), and so does the answer
recorded for its idempotency key: the repository seals and opens them with its cipher.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from geo_router.store.engine import write_transaction
from geo_router.store.schema import (
    FALSE_RESOLUTIONS,
    GEOM_COLUMN,
    idempotency_keys,
    report_updates,
    report_zones,
    reports,
)
from geo_router.store.sealed_homes import (
    HOME_SOURCE,
    Cipher,
    open_home,
    require_cipher,
    scrub_decision,
    seal_home,
)

__all__ = [
    "PRIVATE_FIELDS",
    "IdempotencyEntry",
    "ImportedReports",
    "NuisanceRecord",
    "NumberWindow",
    "Report",
    "ReportQuery",
    "ReportsRepo",
    "StatusChange",
    "StoredAnswer",
]

#: Fields of a report only admins and intake keys may know of (never shown as stored).
PRIVATE_FIELDS: tuple[str, ...] = ("reporter_phone_hash", "reporter_phone_enc")
_TIMES: tuple[str, ...] = ("created_at", "updated_at", "closed_at")


@dataclass(slots=True)
class Report:
    """A stored report with its routing decision (``decision``: the routing answer as JSON
    data, plus agency, layer versions, how it was located and its flags)."""

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
    reporter_phone_hash: str | None = field(repr=False)
    reporter_phone_enc: str | None = field(repr=False)
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
        """JSON-ready dict (ISO 8601 times); ``include_private=False`` drops the phone fields."""
        data = asdict(self)
        for name in _TIMES:
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        if not include_private:
            for name in PRIVATE_FIELDS:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Inverse of :meth:`to_dict` (with private fields)."""
        values: dict[str, Any] = {f.name: data.get(f.name) for f in fields(cls)}
        for name in _TIMES:
            if values[name] is not None:
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


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
class NuisanceRecord:
    """How a number has used intake: reports made, false reports, its last report (UTC)."""

    reports_made: int
    false_reports: int  #: closed as one of ``FALSE_RESOLUTIONS``
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """Which reports a page holds; values already checked (``ReportFilters`` builds it).

    ``zone`` is ``(layer, zone_id)``; ``bbox`` is ``(minlon, minlat, maxlon, maxlat)``;
    ``statuses`` and ``ids`` match any of their values; times are UTC-aware.
    """

    zone: tuple[str, str] | None = None
    category: str | None = None
    statuses: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    channel: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class IdempotencyEntry:
    """An Idempotency-Key to record with a new report, scoped to ``owner`` (the API key id)."""

    key: str
    owner: str
    request_hash: str
    expired_before: datetime  #: keys created before this have expired: purged on write


@dataclass(frozen=True, slots=True)
class NumberWindow:
    """The recent reports of one number, read inside the write transaction of a new one.

    ``admit`` gets the creation times of the newest ``limit`` reports of ``phone_hash`` after
    ``since`` (newest first) while concurrent filings from that number wait, and raises to
    refuse the report (nothing is written) or returns to let it be written.
    """

    phone_hash: str
    since: datetime
    limit: int
    admit: Callable[[list[datetime]], None]


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first answer given for an idempotency key, and the hash of its request."""

    request_hash: str
    report: Report


@dataclass(slots=True)
class ImportedReports:
    """One chunk of historic reports as columns (``decision`` and ``flags`` as JSON text).

    ``zones`` holds ``(report_id, layer, zone_id)`` for every zone a report lies in.
    """

    ids: list[str]
    category: list[str]
    description: list[str | None]
    lon: list[float | None]
    lat: list[float | None]
    decision: list[str]
    flags: list[str]
    created_at: list[datetime]
    updated_at: datetime
    zones: list[tuple[str, str, str]]


#: First key of the PostgreSQL advisory locks that serialize filings of one number (the
#: second key is the number's hash); arbitrary, apart from the migration lock.
_PG_NUMBER_LOCK = 0x6E75_6D62  # "numb"

#: geom-column answers per database URL (a repository is made per request; the answer holds).
_GEOM_CACHE: dict[str, bool] = {}


def _report(row: sa.Row[Any], zones: dict[str, str], cipher: Cipher | None) -> Report:
    data = row._mapping
    values = {f.name: data[f.name] for f in fields(Report) if f.name != "zones"}
    values["decision"] = values["decision"] or {}
    values["flags"] = list(values["flags"] or [])
    token = data["home_enc"]
    if token is not None and cipher is not None:
        home = open_home(cipher, token)
        values["lon"], values["lat"] = home.lon, home.lat
        values["decision"] = home.decision if home.decision is not None else values["decision"]
    return Report(**values, zones=zones)


def _sealed(report: Report) -> bool:
    """Whether a report's point is a registered caller's home (stored sealed)."""
    return report.location_source == HOME_SOURCE and report.lon is not None


def _report_values(report: Report, cipher: Cipher | None) -> dict[str, Any]:
    """The ``reports`` row of a report (its zones go to ``report_zones``)."""
    values = {f.name: getattr(report, f.name) for f in fields(Report) if f.name != "zones"}
    values["home_enc"] = None
    if _sealed(report) and report.lon is not None and report.lat is not None:
        key = require_cipher(cipher)
        values["home_enc"] = seal_home(key, report.lon, report.lat, report.decision)
        values["lon"] = values["lat"] = None
        values["decision"] = scrub_decision(report.decision)
    return values


def _idempotency_values(
    entry: IdempotencyEntry, report: Report, cipher: Cipher | None
) -> dict[str, Any]:
    response: dict[str, Any] = report.to_dict()
    if _sealed(report):
        response = {"sealed": require_cipher(cipher).encrypt(json.dumps(response))}
    return {
        "key": entry.key,
        "api_key_id": entry.owner,
        "request_hash": entry.request_hash,
        "report_id": report.id,
        "response": response,
        "created_at": report.created_at,
    }


def _stored_answer(response: dict[str, Any], cipher: Cipher | None) -> dict[str, Any]:
    """The answer recorded for an idempotency key, opened when sealed."""
    token = response.get("sealed")
    if token is None:
        return response
    opened: dict[str, Any] = json.loads(require_cipher(cipher).decrypt(token))
    return opened


def _recent_query(phone_hash: str, since: datetime, limit: int) -> sa.Select[Any]:
    """Creation times of the newest ``limit`` reports of a number after ``since``."""
    c = reports.c
    return (
        sa.select(c.created_at)
        .where(c.reporter_phone_hash == phone_hash, c.created_at > since)
        .order_by(c.created_at.desc())
        .limit(limit)
    )


def _visible(channel_scope: str | None) -> list[sa.ColumnElement[bool]]:
    """WHERE conditions limiting reports to one channel (None: every channel)."""
    return [reports.c.channel == channel_scope] if channel_scope else []


class ReportsRepo:
    """The report tables over one engine (migration 0002 applied).

    Parameters
    ----------
    engine
        The store's engine.
    cipher
        Seals and opens points at registered callers' homes (``Secrets``). Without it such
        reports read without their point and writing one raises ConfigurationError.
    """

    def __init__(self, engine: sa.Engine, cipher: Cipher | None = None) -> None:
        self.engine = engine
        self.cipher = cipher

    def sealed_with(self, cipher: Cipher) -> ReportsRepo:
        """This repository with ``cipher`` for home points (itself when it has one)."""
        return self if self.cipher is not None else ReportsRepo(self.engine, cipher)

    # -- filing ---------------------------------------------------------------------------

    def replay(self, key: str, owner: str, since: datetime) -> StoredAnswer | None:
        """The first answer recorded for ``key`` of ``owner`` at or after ``since``."""
        c = idempotency_keys.c
        query = sa.select(c.request_hash, c.response).where(
            c.key == key, c.api_key_id == owner, c.created_at >= since
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        answer = _stored_answer(row.response, self.cipher)
        return StoredAnswer(row.request_hash, Report.from_dict(answer))

    def insert(
        self,
        report: Report,
        *,
        actor: str,
        idempotency: IdempotencyEntry | None = None,
        window: NumberWindow | None = None,
    ) -> bool:
        """Write a report, its zones, its first history entry and its idempotency key at once.

        With ``idempotency``, expired keys are purged first (the index on their creation
        time keeps this to the expired rows), which also frees an expired key used again.
        With ``window``, the number's recent reports are read and ``window.admit`` decides in
        the same transaction, serialized per number (SQLite: ``BEGIN IMMEDIATE`` holds the
        write lock; PostgreSQL: a transaction advisory lock on the number's hash), so that
        parallel filings cannot all see the same count.

        Returns
        -------
        bool
            False when a concurrent request recorded the same idempotency key first
            (nothing was written); True otherwise.
        """
        try:
            with write_transaction(self.engine) as conn:
                if window is not None:
                    window.admit(self._recent_times(conn, window))
                conn.execute(reports.insert().values(**_report_values(report, self.cipher)))
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
                        actor=actor,
                        from_status=None,
                        to_status=report.status,
                        note="created",
                    )
                )
                if idempotency is not None:
                    conn.execute(
                        idempotency_keys.delete().where(
                            idempotency_keys.c.created_at < idempotency.expired_before
                        )
                    )
                    conn.execute(
                        idempotency_keys.insert().values(
                            **_idempotency_values(idempotency, report, self.cipher)
                        )
                    )
        except sa.exc.IntegrityError:
            if idempotency is None:
                raise
            return False
        return True

    # -- reading --------------------------------------------------------------------------

    def get(self, report_id: str, *, channel_scope: str | None = None) -> Report | None:
        """One report, or None when missing or on another channel than ``channel_scope``."""
        query = sa.select(reports).where(reports.c.id == report_id, *_visible(channel_scope))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            return _report(row, self._zones_of(conn, [report_id])[report_id], self.cipher)

    def page(
        self, query: ReportQuery, *, channel_scope: str | None = None
    ) -> tuple[list[Report], int]:
        """Reports matching ``query``, newest first, and how many match in all."""
        conditions = [*_visible(channel_scope), *self._conditions(query)]
        count = sa.select(sa.func.count()).select_from(reports).where(*conditions)
        select = (
            sa.select(reports)
            .where(*conditions)
            .order_by(reports.c.created_at.desc(), reports.c.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        with self.engine.connect() as conn:
            total = int(conn.execute(count).scalar_one())
            rows = conn.execute(select).all()
            zones = self._zones_of(conn, [r.id for r in rows])
        return [_report(r, zones[r.id], self.cipher) for r in rows], total

    def history(self, report_id: str) -> list[StatusChange]:
        """Every status change of a report, oldest first (creation included)."""
        u = report_updates.c
        query = sa.select(report_updates).where(u.report_id == report_id).order_by(u.at, u.id)
        with self.engine.connect() as conn:
            return [StatusChange(**row._mapping) for row in conn.execute(query)]

    @staticmethod
    def _zones_of(conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, str]]:
        """report id -> {layer: zone_id} for the given reports (one query)."""
        out: dict[str, dict[str, str]] = {i: {} for i in ids}
        if not ids:
            return out
        z = report_zones.c
        for report_id, layer, zone_id in conn.execute(
            sa.select(z.report_id, z.layer, z.zone_id).where(z.report_id.in_(ids))
        ):
            out[report_id][layer] = zone_id
        return out

    def _conditions(self, query: ReportQuery) -> list[sa.ColumnElement[bool]]:
        """WHERE conditions of a query (PostGIS ``&&`` for the bbox when available)."""
        c = reports.c
        conditions: list[sa.ColumnElement[bool]] = []
        if query.zone is not None:
            layer, zone_id = query.zone
            z = report_zones.c
            conditions.append(
                sa.exists().where(z.report_id == c.id, z.layer == layer, z.zone_id == zone_id)
            )
        for column, value in ((c.category, query.category), (c.channel, query.channel)):
            if value is not None:
                conditions.append(column == value)
        for column, values in ((c.status, query.statuses), (c.id, query.ids)):
            if values is not None:
                conditions.append(column.in_(values))
        if query.created_from is not None:
            conditions.append(c.created_at >= query.created_from)
        if query.created_to is not None:
            conditions.append(c.created_at <= query.created_to)
        if query.bbox is not None:
            conditions.append(self._bbox_condition(query.bbox))
        return conditions

    def _bbox_condition(self, bbox: tuple[float, float, float, float]) -> sa.ColumnElement[bool]:
        minlon, minlat, maxlon, maxlat = bbox
        if self.has_geom_column():
            envelope = sa.func.ST_MakeEnvelope(minlon, minlat, maxlon, maxlat, 4326)
            return sa.literal_column(f"reports.{GEOM_COLUMN}").op("&&")(envelope)
        return sa.and_(reports.c.lon.between(minlon, maxlon), reports.c.lat.between(minlat, maxlat))

    def has_geom_column(self) -> bool:
        """Whether ``reports.geom`` (PostGIS) exists in this database (cached per URL)."""
        if self.engine.dialect.name != "postgresql":
            return False
        key = self.engine.url.render_as_string(hide_password=True)
        if key not in _GEOM_CACHE:
            # pg_attribute, not the inspector: SQLAlchemy does not know the geometry type.
            query = sa.text(
                "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('reports') "
                "AND attname = :name AND NOT attisdropped"
            )
            with self.engine.connect() as conn:
                _GEOM_CACHE[key] = conn.execute(query, {"name": GEOM_COLUMN}).first() is not None
        return _GEOM_CACHE[key]

    # -- lifecycle ------------------------------------------------------------------------

    def change_status(
        self,
        report_id: str,
        to_status: str,
        *,
        resolution: str | None,
        note: str | None,
        actor: str,
        at: datetime,
        check: Callable[[str], None],
        channel_scope: str | None = None,
    ) -> bool:
        """Move a report to ``to_status`` and record it in the history, in one transaction.

        ``check`` gets the current status (the row locked) and raises to refuse the change.
        The resolution is kept only on ``closed``, which also sets ``closed_at``.

        Returns
        -------
        bool
            False when the report is missing or on another channel than ``channel_scope``.
        """
        closing = to_status == "closed"
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                sa.select(reports.c.status)
                .where(reports.c.id == report_id, *_visible(channel_scope))
                .with_for_update()
            ).first()
            if row is None:
                return False
            check(row.status)
            conn.execute(
                reports.update()
                .where(reports.c.id == report_id)
                .values(
                    status=to_status,
                    resolution=resolution if closing else None,
                    updated_at=at,
                    closed_at=at if closing else None,
                )
            )
            conn.execute(
                report_updates.insert().values(
                    report_id=report_id,
                    at=at,
                    actor=actor,
                    from_status=row.status,
                    to_status=to_status,
                    resolution=resolution,
                    note=note,
                )
            )
        return True

    # -- screening ------------------------------------------------------------------------

    def nuisance(self, phone_hash: str) -> NuisanceRecord:
        """Reports made, false reports and the last report time of one number (by HMAC)."""
        c = reports.c
        false_case = sa.case((c.resolution.in_(FALSE_RESOLUTIONS), 1), else_=0)
        query = sa.select(
            sa.func.count(c.id),
            sa.func.coalesce(sa.func.sum(false_case), 0),
            sa.func.max(c.created_at),
        ).where(c.reporter_phone_hash == phone_hash)
        with self.engine.connect() as conn:
            made, false_reports, last_seen = conn.execute(query).one()
        return NuisanceRecord(int(made), int(false_reports), last_seen)

    def recent_times(self, phone_hash: str, *, since: datetime, limit: int) -> list[datetime]:
        """Creation times of the newest ``limit`` reports of a number after ``since``."""
        with self.engine.connect() as conn:
            return list(conn.execute(_recent_query(phone_hash, since, limit)).scalars())

    @staticmethod
    def _recent_times(conn: sa.Connection, window: NumberWindow) -> list[datetime]:
        """``recent_times`` inside a write transaction, after taking the number's lock."""
        if conn.dialect.name == "postgresql":
            # Read committed: the SELECT after the lock sees every filing that held it before.
            key = sa.func.hashtext(window.phone_hash)
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_NUMBER_LOCK, key)))
        query = _recent_query(window.phone_hash, window.since, window.limit)
        return list(conn.execute(query).scalars())

    # -- bulk import ----------------------------------------------------------------------

    def insert_imported(self, chunk: ImportedReports, *, channel: str, status: str) -> None:
        """Write one chunk of historic reports (one executemany per table, one transaction).

        ``channel`` and ``status`` are the same for every row (checked by the importer).
        """
        rows = [
            {
                "id": report_id,
                "category": category,
                "description": description,
                "lon": lon,
                "lat": lat,
                "decision": decision,
                "flags": flags,
                "created_at": created_at,
                "updated_at": chunk.updated_at,
            }
            for report_id, category, description, lon, lat, decision, flags, created_at in zip(
                chunk.ids,
                chunk.category,
                chunk.description,
                chunk.lon,
                chunk.lat,
                chunk.decision,
                chunk.flags,
                chunk.created_at,
                strict=True,
            )
        ]
        zone_rows = [{"report_id": r, "layer": la, "zone_id": z} for r, la, z in chunk.zones]
        insert = self._bulk_insert(channel=channel, status=status)
        with write_transaction(self.engine) as conn:
            if rows:
                conn.execute(insert, rows)
            if zone_rows:
                conn.execute(report_zones.insert(), zone_rows)

    def _bulk_insert(self, *, channel: str, status: str) -> sa.Insert:
        """INSERT for bulk imports: few per-row parameters, JSON arriving as text.

        json.dumps per row inside SQLAlchemy costs more than routing, so the JSON columns
        come serialized by orjson (cast to JSONB on PostgreSQL; SQLite keeps JSON as text
        anyway). Constant columns are bound once as literals.
        """
        values: dict[str, Any] = {}
        for name in ("id", "category", "description", "lon", "lat", "created_at", "updated_at"):
            values[name] = sa.bindparam(name, type_=reports.c[name].type)
        for name in ("decision", "flags"):
            param = sa.bindparam(name, type_=sa.Text())
            postgres = self.engine.dialect.name == "postgresql"
            values[name] = sa.cast(param, postgresql.JSONB()) if postgres else param
        constants = {"channel": channel, "status": status, "location_source": "imported"}
        for name, value in constants.items():
            values[name] = sa.literal(value, type_=sa.String())
        return reports.insert().values(values)
