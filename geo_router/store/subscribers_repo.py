"""Subscribers in the store: every SQL statement of the caller registry.

A stored subscriber (:class:`SubscriberRow`) holds its phone number only as an HMAC (lookup)
and a Fernet token (display), its name and address only as tokens; what is kept in the clear
(:class:`SubscriberFacts`: zones, responders, verification) is shared with the answer the
subscriber service builds. The home point is in :class:`SubscriberFacts` too, but the table
holds it only sealed (``home_enc``, :mod:`geo_router.store.sealed_homes`): the repository
seals and opens it with the cipher it is given, so the database alone does not reveal a home.
Nothing here logs personal data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from geo_router.errors import InputError
from geo_router.store.engine import write_transaction
from geo_router.store.schema import subscribers
from geo_router.store.sealed_homes import Cipher, open_home, require_cipher, seal_home

__all__ = [
    "Home",
    "Registration",
    "SubscriberFacts",
    "SubscriberRow",
    "SubscribersRepo",
    "duplicate_phone",
]


@dataclass(frozen=True, slots=True)
class Home:
    """Where a registered caller lives (EPSG:4326) and how it was obtained."""

    lon: float
    lat: float
    source: str | None  #: "given" | "geocoded"
    geocode_confidence: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberFacts:
    """What is stored in the clear about a subscriber."""

    lon: float | None
    lat: float | None
    location_source: str | None  #: "given" | "geocoded" | None
    geocode_confidence: float | None
    zones: dict[str, Any]  #: per layer, the zone resolved at registration (JSON data)
    responders: dict[str, Any]  #: per facility type, the nearest responders (JSON data)
    verification_status: str
    verification_method: str | None
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def home(self) -> Home | None:
        """The home location, or None when none is recorded."""
        if self.lon is None or self.lat is None:
            return None
        return Home(self.lon, self.lat, self.location_source, self.geocode_confidence)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberRow(SubscriberFacts):
    """A ``subscribers`` row: the facts plus the sealed personal fields."""

    id: str
    phone_hash: str = field(repr=False)  #: ``Secrets.hash_phone`` of the E.164 number
    phone_enc: str = field(repr=False)  #: Fernet token of the E.164 number
    name_enc: str | None = field(repr=False)
    address_enc: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class Registration:
    """A registered number: its subscriber and home (None when none is recorded)."""

    subscriber_id: str
    home: Home | None


def duplicate_phone(row: int | None = None, other_row: int | None = None) -> InputError:
    """The error for a number that is already registered (never naming the number).

    ``row`` and ``other_row`` name CSV rows (the file's own earlier row, when it repeats).
    """
    where = f"row {row}: " if row is not None else ""
    of = f" (row {other_row})" if other_row is not None else ""
    return InputError(
        f"{where}this phone number is already registered{of}",
        detail={"code": "duplicate_phone", "field": "phone", "reason": "already registered"},
    )


#: Hashes per ``IN (...)`` list (bounds the statement size).
_IN_CHUNK = 500
#: Fields stored as columns of their own (the home point is sealed into ``home_enc``).
_COLUMNS = tuple(f.name for f in fields(SubscriberRow) if f.name not in ("lon", "lat"))
_HOME = (
    subscribers.c.id,
    subscribers.c.home_enc,
    subscribers.c.location_source,
    subscribers.c.geocode_confidence,
)


def _point(cipher: Cipher | None, token: str | None) -> tuple[float | None, float | None]:
    """The home point sealed in ``token``; (None, None) without one or without the cipher."""
    if token is None or cipher is None:
        return None, None
    home = open_home(cipher, token)
    return home.lon, home.lat


def _row(row: sa.Row[Any], cipher: Cipher | None) -> SubscriberRow:
    data = row._mapping
    values = {name: data[name] for name in _COLUMNS}
    values["zones"] = values["zones"] or {}
    values["responders"] = values["responders"] or {}
    values["lon"], values["lat"] = _point(cipher, data["home_enc"])
    return SubscriberRow(**values)


def _values(row: SubscriberRow, cipher: Cipher | None) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in _COLUMNS}
    values["home_enc"] = None
    if row.lon is not None and row.lat is not None:
        values["home_enc"] = seal_home(require_cipher(cipher), row.lon, row.lat)
    return values


class SubscribersRepo:
    """The ``subscribers`` table over one engine.

    Parameters
    ----------
    engine
        The store's engine (every migration applied).
    cipher
        Seals and opens home points (``Secrets``). Without it homes read as None and
        writing one raises ConfigurationError.
    """

    def __init__(self, engine: sa.Engine, cipher: Cipher | None = None) -> None:
        self.engine = engine
        self.cipher = cipher

    def sealed_with(self, cipher: Cipher) -> SubscribersRepo:
        """This repository with ``cipher`` for home points (itself when it has one)."""
        return self if self.cipher is not None else SubscribersRepo(self.engine, cipher)

    def get(self, subscriber_id: str) -> SubscriberRow | None:
        """One subscriber by id, or None."""
        return self._one(subscribers.c.id == subscriber_id)

    def by_hash(self, phone_hash: str) -> SubscriberRow | None:
        """The subscriber whose number has this HMAC, or None."""
        return self._one(subscribers.c.phone_hash == phone_hash)

    def registration(self, phone_hash: str) -> Registration | None:
        """Whether a number is registered, and its home: no sealed column is read."""
        query = sa.select(*_HOME).where(subscribers.c.phone_hash == phone_hash)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        home = None
        lon, lat = _point(self.cipher, row.home_enc)
        if lon is not None and lat is not None:
            home = Home(lon, lat, row.location_source, row.geocode_confidence)
        return Registration(row.id, home)

    def page(self, limit: int, offset: int) -> list[SubscriberRow]:
        """Subscribers, oldest first."""
        query = (
            sa.select(subscribers)
            .order_by(subscribers.c.created_at, subscribers.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            return [_row(row, self.cipher) for row in conn.execute(query)]

    def count(self) -> int:
        """How many subscribers are registered."""
        query = sa.select(sa.func.count()).select_from(subscribers)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def taken(self, hashes: Iterable[str]) -> set[str]:
        """Which of these phone HMACs are registered already."""
        wanted = list(hashes)
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                column = subscribers.c.phone_hash
                found.update(conn.execute(sa.select(column).where(column.in_(chunk))).scalars())
        return found

    def insert(self, rows: Sequence[SubscriberRow]) -> None:
        """Register subscribers, all or none.

        Raises
        ------
        InputError
            One of the numbers is registered already (``detail['code'] == 'duplicate_phone'``).
        """
        if self.taken(r.phone_hash for r in rows):
            raise duplicate_phone()
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(subscribers.insert(), [_values(r, self.cipher) for r in rows])
        except sa.exc.IntegrityError:  # lost a race with a concurrent registration
            raise duplicate_phone() from None

    def save(self, row: SubscriberRow) -> bool:
        """Write every column of an existing subscriber; False when it does not exist.

        Raises
        ------
        InputError
            Its number belongs to another subscriber (``duplicate_phone``).
        """
        c = subscribers.c
        # Without the cipher a row read here has no home, and writing it back would drop it.
        values = _values(row, require_cipher(self.cipher))
        del values["id"], values["created_at"]
        try:
            with write_transaction(self.engine) as conn:
                other = conn.execute(
                    sa.select(c.id).where(c.phone_hash == row.phone_hash, c.id != row.id)
                ).first()
                if other is not None:
                    raise duplicate_phone()
                done = conn.execute(subscribers.update().where(c.id == row.id).values(**values))
        except sa.exc.IntegrityError:
            raise duplicate_phone() from None
        return bool(done.rowcount)

    def delete(self, subscriber_id: str) -> bool:
        """Remove a subscriber; False when it does not exist."""
        with write_transaction(self.engine) as conn:
            gone = conn.execute(subscribers.delete().where(subscribers.c.id == subscriber_id))
        return bool(gone.rowcount)

    def _one(self, condition: sa.ColumnElement[bool]) -> SubscriberRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers).where(condition)).first()
        return None if row is None else _row(row, self.cipher)
