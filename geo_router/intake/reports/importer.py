"""Bulk import of historic reports (a 311 export, CSV or CSV.gz), used by ``geo-router reports
import``.

Each chunk is routed with ``Router.route_many`` (vectorized) and written with one
executemany per table, in one transaction per chunk. Rows with unusable coordinates are
*stored* (lon/lat empty, flag ``invalid_coordinates``), never dropped: analysts want the
whole history. An imported report keeps a compact decision (zone ids and statuses, the
nearest responder of each type, the agency), not the live routing answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import orjson
import pandas as pd

from geo_router.city.models import STATUS_CODES, BulkRoute, CategoryRoute
from geo_router.city.router import Router
from geo_router.errors import InputError
from geo_router.store.reports_repo import ImportedReports, ReportsRepo
from geo_router.store.schema import (
    IMPORT_CHANNEL,
    REPORT_CHANNELS,
    STATUSES,
    new_report_id,
    utcnow,
)

__all__ = ["ImportSummary", "import_reports"]


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


def _layer_zone_ids(router: Router, bulk: BulkRoute) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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


def _nearest_ids(router: Router, bulk: BulkRoute) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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
    router: Router,
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


def _chunk_reports(chunk: _Chunk, *, now: datetime) -> ImportedReports:
    """The reports of a chunk as columns (JSON already serialized) with their zones."""
    ids = [new_report_id() for _ in range(chunk.n)]
    zone_lists = {name: (z.tolist(), st.tolist()) for name, (z, st) in chunk.zones.items()}
    near_lists = {kind: (f.tolist(), d.tolist()) for kind, (f, d) in chunk.nearest.items()}
    dumps = orjson.dumps
    decisions = []
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
        decisions.append(dumps(decision).decode())
    lon = [None if v != v else v for v in chunk.lon]  # NaN -> NULL
    lat = [None if lo is None else la for lo, la in zip(lon, chunk.lat, strict=True)]
    return ImportedReports(
        ids=ids,
        category=chunk.category,
        description=chunk.description,
        lon=lon,
        lat=lat,
        decision=decisions,
        flags=[dumps(f).decode() for f in chunk.flags],
        created_at=chunk.created_at,
        updated_at=now,
        zones=[
            (ids[i], name, str(zone[i]))
            for name, (zone, _) in chunk.zones.items()
            for i in np.flatnonzero(zone != None).tolist()  # noqa: E711 - elementwise
        ],
    )


def import_reports(
    path: str | Path,
    router: Router,
    reports: ReportsRepo,
    *,
    lon_field: str,
    lat_field: str,
    category_field: str,
    created_field: str,
    channel: str = IMPORT_CHANNEL,
    category_map: Mapping[str, str] | None = None,
    chunk_size: int = 50_000,
    description_field: str | None = None,
    timezone: str = "UTC",
    status: str = "closed",
    progress: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Load historic reports (a 311 export, CSV or CSV.gz) in bulk.

    Parameters
    ----------
    path
        CSV or CSV.gz file.
    router
        The city's ``Router``.
    reports
        The store's reports repository (migration 0002 applied).
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
    if channel not in REPORT_CHANNELS:
        raise InputError(f"unknown channel {channel!r}; channels: {', '.join(REPORT_CHANNELS)}")
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
    _check_fields(source, _read_header(source), {f"--{k}-field": v for k, v in fields.items()})
    categories = {c.code: router.category(c.code) for c in router.snapshot.profile.categories}
    summary = ImportSummary(path=str(source))
    started = time.perf_counter()
    usecols = [v for v in fields.values() if v is not None]
    reader = pd.read_csv(
        source, usecols=usecols, dtype=str, chunksize=chunk_size, keep_default_na=True
    )
    for frame in reader:
        now = utcnow()
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
        reports.insert_imported(_chunk_reports(chunk, now=now), channel=channel, status=status)
        summary.rows += len(frame)
        summary.stored += chunk.n
        summary.seconds = time.perf_counter() - started
        if progress is not None:
            progress(summary)
    summary.seconds = time.perf_counter() - started
    return summary
