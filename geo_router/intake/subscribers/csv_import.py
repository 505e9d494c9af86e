"""Register many callers from one CSV (``phone,name,address,lon,lat``), all rows or none.

Every row is checked, located and routed before anything is written: given coordinates are
checked and routed in bulk, the other rows geocoded one address at a time. Errors name the
row (the header is row 1) and the field.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from geo_router.city import coords
from geo_router.city.router import Router
from geo_router.errors import GeoRouterError, InputError, InvalidPhoneError
from geo_router.intake.locate import Located, Locator
from geo_router.intake.phones import PhoneNumber
from geo_router.intake.secrets import Secrets
from geo_router.intake.subscribers.models import RESPONDERS_K, clean_text, new_subscriber_row
from geo_router.store.schema import utcnow
from geo_router.store.subscribers_repo import SubscriberRow, SubscribersRepo, duplicate_phone

__all__ = ["CSV_COLUMNS", "MAX_IMPORT_ROWS", "CsvSource", "ImportSummary", "RowError", "import_csv"]

log = logging.getLogger(__name__)

#: Rows one CSV import may hold.
MAX_IMPORT_ROWS = 100_000
#: Columns a subscriber CSV may have (``phone`` is required).
CSV_COLUMNS: tuple[str, ...] = ("phone", "name", "address", "lon", "lat")

#: CSV bytes, CSV text, a path or an open file.
CsvSource = bytes | str | os.PathLike[str] | IO[bytes] | IO[str]
_Record = dict[str, str]


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


def _read_csv(source: CsvSource) -> list[_Record]:
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
        rows.append({k: v or "" for k, v in rec.items() if k in CSV_COLUMNS})
    return rows


@dataclass(frozen=True, slots=True)
class _Importer:
    """What an import needs: the registry's parts."""

    subscribers: SubscribersRepo
    secrets: Secrets
    locator: Locator
    router: Callable[[], Router]
    region: str

    def prepare(self, records: list[_Record], errors: list[RowError]) -> list[SubscriberRow]:
        """Check, locate and route every row; the rows ready to insert."""
        rows = _RowChecks(len(records), errors)
        phones = self._phones(records, rows)
        texts = [self._texts(rec, i, rows) for i, rec in enumerate(records)]
        located = self._locations(records, texts, rows)
        good = np.flatnonzero(rows.ok).tolist()
        errors.sort(key=lambda e: e.row)
        if not good:
            return []
        router = self.router()
        lon = np.array([located[i].lon for i in good])
        lat = np.array([located[i].lat for i in good])
        results = router.results(router.route_many(lon, lat, k=RESPONDERS_K), k=RESPONDERS_K)
        now = utcnow()
        return [
            new_subscriber_row(self.secrets, phones[i], texts[i], located[i], result, now=now)
            for i, result in zip(good, results, strict=True)
        ]

    def _phones(self, records: list[_Record], rows: _RowChecks) -> dict[int, PhoneNumber]:
        """Each row's number; bad numbers, repeats within the file and registered ones fail."""
        phones: dict[int, PhoneNumber] = {}
        first_row: dict[str, int] = {}
        for i, rec in enumerate(records):
            try:
                phone = PhoneNumber.parse(rec.get("phone", ""), self.region, self.secrets)
            except InvalidPhoneError as exc:
                rows.fail(i, exc, "phone")
                continue
            phones[i] = phone
            if phone.hash in first_row:
                rows.fail(i, duplicate_phone(rows.number(i), first_row[phone.hash]), "phone")
            else:
                first_row[phone.hash] = rows.number(i)
        taken = self.subscribers.taken(first_row)
        for i, phone in phones.items():
            if rows.ok[i] and phone.hash in taken:
                rows.fail(i, duplicate_phone(rows.number(i)), "phone")
        return phones

    @staticmethod
    def _texts(rec: _Record, i: int, rows: _RowChecks) -> tuple[str | None, str | None]:
        """(name, address) of one row, cleaned; too long fails the row."""
        try:
            return clean_text(rec.get("name"), "name"), clean_text(rec.get("address"), "address")
        except InputError as exc:
            rows.fail(i, exc, None)
            return None, None

    def _locations(
        self,
        records: list[_Record],
        texts: list[tuple[str | None, str | None]],
        rows: _RowChecks,
    ) -> dict[int, Located]:
        """Each good row's home: given coordinates checked in bulk, the rest geocoded."""
        lon_raw = np.array([r.get("lon", "").strip() for r in records], dtype=object)
        lat_raw = np.array([r.get("lat", "").strip() for r in records], dtype=object)
        has_lon, has_lat = lon_raw != "", lat_raw != ""
        given, half = has_lon & has_lat, has_lon ^ has_lat
        valid, reasons = coords.check_lonlat(
            np.where(given, lon_raw, "0"), np.where(given, lat_raw, "0")
        )
        good_given = given & np.asarray(valid, dtype=bool)
        located: dict[int, Located] = {}
        for i in np.flatnonzero(good_given).tolist():
            point = (float(lon_raw[i]), float(lat_raw[i]))
            located[i] = self.locator.locate(point=point)
        for i in np.flatnonzero(given & ~good_given).tolist():
            rows.fail(i, str(reasons[i]), "lon")
        for i in np.flatnonzero(half).tolist():
            rows.fail(i, "lon and lat go together (one is empty)", "lat" if has_lon[i] else "lon")
        for i in np.flatnonzero(rows.ok & ~given & ~half).tolist():
            try:
                located[i] = self.locator.locate(address=texts[i][1])
            except InputError as exc:
                rows.fail(i, exc, "address")
        return located


def import_csv(
    source: CsvSource,
    *,
    subscribers: SubscribersRepo,
    secrets: Secrets,
    locator: Locator,
    router: Callable[[], Router],
    region: str,
    dry_run: bool = False,
    skip_invalid: bool = False,
) -> ImportSummary:
    """Register many callers from CSV (columns ``phone,name,address,lon,lat``).

    Parameters
    ----------
    source
        CSV bytes, CSV text (``str``), a path, or an open file.
    subscribers, secrets, locator, router, region
        The registry's repository, secrets, locator, current router and phone region.
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
    records = _read_csv(source)
    summary = ImportSummary(rows=len(records), dry_run=dry_run)
    importer = _Importer(subscribers, secrets, locator, router, region)
    prepared = importer.prepare(records, summary.errors)
    summary.valid = len(prepared)
    summary.skipped = summary.rows - summary.valid
    if dry_run or not prepared or (summary.errors and not skip_invalid):
        return summary
    try:
        subscribers.insert(prepared)
    except InputError as exc:  # a number registered meanwhile by someone else
        summary.errors.append(RowError(0, "phone", exc.message))
        return summary
    summary.created = len(prepared)
    summary.committed = True
    summary.ids = [r.id for r in prepared]
    log.info("imported %d subscribers (%d rows skipped)", summary.created, summary.skipped)
    return summary
