"""Sealed homes: a registered caller's home point is stored only as ciphertext.

A subscriber's home and a report located at it (location source ``registered_caller``) must
not be readable from the database alone: matched against the city's address points, a point
gives the address back. Such a point is stored as a Fernet token (``home_enc``) made by the
store's :class:`Cipher` (``geo_router.intake.secrets.Secrets``); the zones it lies in stay in
the clear for queries and statistics. A report's routing decision measured from the home
(the routed point, distances and bearings to responders and zones) is sealed with it, and
the clear ``decision`` column keeps a copy without those traces (:func:`scrub_decision`).

A repository without a cipher reads such rows without their point (``lon``/``lat`` None)
and refuses to write one.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from geo_router.errors import ConfigurationError

__all__ = [
    "HOME_SOURCE",
    "Cipher",
    "SealedHome",
    "open_home",
    "require_cipher",
    "scrub_decision",
    "seal_home",
]

#: The report location source whose point is a registered caller's home.
HOME_SOURCE = "registered_caller"


class Cipher(Protocol):
    """Authenticated encryption of text (``Secrets``)."""

    def encrypt(self, text: str) -> str:
        """A token for ``text`` (a fresh one every call)."""
        ...

    def decrypt(self, token: str) -> str:
        """The text of a token made by ``encrypt``."""
        ...


class SealedHome:
    """A home point (and, for reports, the decision routed from it) once opened."""

    __slots__ = ("decision", "lat", "lon")

    def __init__(self, lon: float, lat: float, decision: dict[str, Any] | None = None) -> None:
        self.lon = lon
        self.lat = lat
        self.decision = decision

    def __repr__(self) -> str:
        return "SealedHome(...)"  # never the point


def require_cipher(cipher: Cipher | None) -> Cipher:
    """``cipher``, or ConfigurationError: a home is never written in the clear."""
    if cipher is None:
        raise ConfigurationError(
            "a registered caller's home can only be stored encrypted: this repository was "
            "opened without the secrets"
        )
    return cipher


def seal_home(
    cipher: Cipher, lon: float, lat: float, decision: dict[str, Any] | None = None
) -> str:
    """The token of a home point (with the decision routed from it, for reports)."""
    data: dict[str, Any] = {"lon": lon, "lat": lat}
    if decision is not None:
        data["decision"] = decision
    return cipher.encrypt(json.dumps(data, separators=(",", ":")))


def open_home(cipher: Cipher, token: str) -> SealedHome:
    """The home (and decision) sealed in ``token``; ConfigurationError with a wrong key."""
    data = json.loads(cipher.decrypt(token))
    return SealedHome(float(data["lon"]), float(data["lat"]), data.get("decision"))


def scrub_decision(decision: dict[str, Any]) -> dict[str, Any]:
    """A copy of a routing decision without any trace of the point it was routed from.

    The point itself, every responder's distance and bearing and every zone candidate's
    distance are set to None (with distances to known facilities the point could be
    triangulated); the geocoder's label is dropped.
    """
    data: dict[str, Any] = json.loads(json.dumps(decision))
    if "lon" in data or "lat" in data:
        data["lon"] = data["lat"] = None
    for responders in (data.get("responders") or {}).values():
        for responder in responders or []:
            if isinstance(responder, dict):
                responder["distance_m"] = responder["bearing_deg"] = None
    for zone in (data.get("zones") or {}).values():
        candidates = zone.get("candidates") if isinstance(zone, dict) else None
        for candidate in candidates or []:
            if isinstance(candidate, dict):
                candidate["distance_m"] = None
    location = data.get("location")
    if isinstance(location, dict):
        location["label"] = None
    return data
