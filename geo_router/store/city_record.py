"""The city a store was created for: recorded on first use, checked on every later one.

A store holds one city's reports and subscribers (their zones, their responders); serving
another city from it would mix the two. Whatever opens the store *for a city* (the API,
``geo-router serve``, ``geo-router reports import``) calls :func:`claim_city_profile`; commands
that name no city (API keys, migrations) leave the record alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from geo_router.city.profile import read_profile_toml
from geo_router.errors import ProfileError, StoreCityMismatchError
from geo_router.store.database import describe_store
from geo_router.store.engine import write_transaction
from geo_router.store.schema import store_city, utcnow

__all__ = [
    "CityClaim",
    "CityIdentity",
    "CityRecord",
    "claim_city",
    "claim_city_profile",
    "mismatch_message",
    "profile_identity",
    "recorded_city",
]

#: The one row of ``store_city``.
_ROW_ID = 1


@dataclass(frozen=True, slots=True)
class CityIdentity:
    """What a store records of a city profile: its name and the sha256 of its TOML bytes."""

    name: str
    checksum: str


@dataclass(frozen=True, slots=True)
class CityRecord:
    """The city a store records."""

    name: str
    checksum: str
    recorded_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CityClaim:
    """The outcome of :func:`claim_city` when the store may serve the city.

    ``status`` is ``"recorded"`` (the store had no city: now it has this one), ``"accepted"``
    (same name, same checksum) or ``"updated"`` (same name, the profile changed: the new
    checksum is recorded, the old one is ``previous_checksum``).
    """

    status: Literal["recorded", "accepted", "updated"]
    name: str
    checksum: str
    store: str
    previous_checksum: str | None = None

    @property
    def note(self) -> str | None:
        """One line to log or print when the profile changed since it was recorded."""
        if self.status != "updated" or self.previous_checksum is None:
            return None
        return (
            f"the profile of '{self.name}' changed since this store ({self.store}) recorded it "
            f"(sha256 {self.previous_checksum[:12]} -> {self.checksum[:12]}); "
            "recorded the new checksum"
        )


def profile_identity(path: str | Path) -> CityIdentity:
    """The name and checksum of a city profile, read without loading its layers.

    Raises
    ------
    ProfileError
        The file cannot be read, is not TOML, or has no ``name``.
    """
    file = Path(path).expanduser().resolve()
    raw, data = read_profile_toml(file)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ProfileError(f"{file.name}: name: the city needs a name", detail={"key": "name"})
    # stripped, as the loaded profile has it
    return CityIdentity(name.strip(), hashlib.sha256(raw).hexdigest())


def recorded_city(engine: sa.Engine) -> CityRecord | None:
    """The city the store records, or None when none was recorded yet."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(store_city).where(store_city.c.id == _ROW_ID)).first()
    if row is None:
        return None
    return CityRecord(row.name, row.checksum, row.recorded_at, row.updated_at)


def mismatch_message(store: str, recorded: str, requested: str) -> str:
    """The one line refusing to serve ``requested`` from a store recorded for ``recorded``."""
    return (
        f"this store ({store}) was created for the city '{recorded}'; refusing to serve "
        f"'{requested}' from it. Choose another data dir (GEO_ROUTER_DATA_DIR) or database "
        f"(GEO_ROUTER_DATABASE_URL) for '{requested}'."
    )


def claim_city(engine: sa.Engine, name: str, checksum: str) -> CityClaim:
    """Record the city on a store that has none; accept it again; refuse another one.

    Parameters
    ----------
    engine
        The store's engine, migrated (the ``store_city`` table exists).
    name, checksum
        The city profile's name and the sha256 (hex) of its file (:func:`profile_identity`).

    Returns
    -------
    CityClaim
        Recorded, accepted, or updated (same name, another checksum: see ``CityClaim.note``).

    Raises
    ------
    StoreCityMismatchError
        The store records a city of another name; the message names the store and both
        cities, in one line.
    """
    store = describe_store(engine)
    for attempt in range(2):
        try:
            return _claim_once(engine, name, checksum, store)
        except sa.exc.IntegrityError:
            # Two processes recorded a first city at once: the other one won; look again.
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _claim_once(engine: sa.Engine, name: str, checksum: str, store: str) -> CityClaim:
    with write_transaction(engine) as conn:
        row = conn.execute(sa.select(store_city).where(store_city.c.id == _ROW_ID)).first()
        now = utcnow()
        if row is None:
            conn.execute(
                store_city.insert().values(
                    id=_ROW_ID, name=name, checksum=checksum, recorded_at=now, updated_at=now
                )
            )
            return CityClaim("recorded", name, checksum, store)
        if row.name != name:
            raise StoreCityMismatchError(
                mismatch_message(store, row.name, name),
                detail={"store": store, "recorded_city": row.name, "requested_city": name},
            )
        if row.checksum == checksum:
            return CityClaim("accepted", name, checksum, store)
        conn.execute(
            store_city.update()
            .where(store_city.c.id == _ROW_ID)
            .values(checksum=checksum, updated_at=now)
        )
        return CityClaim("updated", name, checksum, store, previous_checksum=row.checksum)


def claim_city_profile(engine: sa.Engine, profile: str | Path) -> CityClaim:
    """:func:`claim_city` for a city profile file (its name and the sha256 of its bytes).

    Raises
    ------
    ProfileError
        The profile cannot be read or has no name.
    StoreCityMismatchError
        The store was created for another city.
    """
    identity = profile_identity(profile)
    return claim_city(engine, identity.name, identity.checksum)
