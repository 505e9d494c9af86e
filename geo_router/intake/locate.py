"""Where is it? One rule for reports and registered callers' homes alike.

A location comes from, in this order:

1. given coordinates (``source="given"``, confidence 1.0);
2. an address, through the geocoder (``"geocoded"``, the match's confidence; a weak match is
   refused with its candidates);
3. the registered home of the reporting phone (``"registered_caller"``, the home's geocode
   confidence, 1.0 for a given home).

An explicit address beats the caller's home: people report what they see elsewhere. Given
coordinates are taken as they are: the router checks them when it routes (and says when
lat, lon would have been in the city). The caller's home is read from the subscribers'
repository by the number's HMAC; nothing sealed (number, name, address) is read or decrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from geo_router.errors import InputError, InvalidCoordinatesError
from geo_router.intake.phones import PhoneNumber
from geo_router.store.schema import ReportLocationSource
from geo_router.store.subscribers_repo import Registration, SubscribersRepo

if TYPE_CHECKING:  # the geocoder (pandas) loads only with a city that has address points
    from geo_router.city.models import RouteResult
    from geo_router.city.router import Router
    from geo_router.intake.geocode import GeocodeCandidate, GeocodeResult

__all__ = ["AddressGeocoder", "Caller", "Located", "Locator", "route_located"]

#: The router's axis names -> the request fields of a given location (problems name these).
_GIVEN_FIELDS = {"longitude": "location.lon", "latitude": "location.lat"}

#: Candidates an error for a weak address match lists.
MAX_CANDIDATES = 5


class AddressGeocoder(Protocol):
    """What turns address text into places (``geocode.Geocoder``)."""

    def geocode(self, text: str) -> GeocodeResult:
        """Candidates for ``text``."""
        ...


@dataclass(frozen=True, slots=True)
class Located:
    """A location with its source and confidence (and the geocoder's label, if any)."""

    lon: float
    lat: float
    source: ReportLocationSource  #: "given", "geocoded" or "registered_caller"
    confidence: float
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """A reporting phone, and its registration when the number is registered."""

    phone: PhoneNumber
    registration: Registration | None

    @property
    def registered(self) -> bool:
        """Whether the number belongs to a subscriber."""
        return self.registration is not None


def _candidate(c: GeocodeCandidate) -> dict[str, object]:
    """A geocoder candidate as plain data for an error's detail."""
    return {"label": c.label, "lon": c.lon, "lat": c.lat, "confidence": c.confidence}


class Locator:
    """Locates reports and subscribers.

    Parameters
    ----------
    subscribers
        The subscribers' repository (registered callers' homes).
    geocoder
        The city's geocoder; None when the city has no address data (addresses are refused).
    """

    def __init__(self, subscribers: SubscribersRepo, geocoder: AddressGeocoder | None) -> None:
        self.subscribers = subscribers
        self.geocoder = geocoder

    def caller(self, phone: PhoneNumber) -> Caller:
        """The reporting phone with its registration (one read by HMAC)."""
        return Caller(phone, self.subscribers.registration(phone.hash))

    def locate(
        self,
        *,
        point: tuple[float, float] | None = None,
        address: str | None = None,
        caller: Caller | None = None,
    ) -> Located:
        """Where it is: ``point``, else ``address`` geocoded, else the caller's home.

        Raises
        ------
        InputError
            Nothing to locate by (``detail['field'] == 'location'``); an address with no
            geocoder, no match or only a weak match (``detail['candidates']``).
        """
        if point is not None:
            return Located(point[0], point[1], "given", 1.0)
        if address is not None:
            return self.geocode(address)
        home = caller.registration.home if caller and caller.registration else None
        if home is not None:
            confidence = home.geocode_confidence
            return Located(
                home.lon, home.lat, "registered_caller", 1.0 if confidence is None else confidence
            )
        reason = (
            "the reporting phone is not a registered caller with a location"
            if caller is not None
            else "no location or address given"
        )
        raise InputError(
            f"cannot locate: a location or a geocodable address is required ({reason})",
            detail={"field": "location", "reason": reason},
        )

    def geocode(self, address: str) -> Located:
        """A confident geocoder match of ``address``.

        Raises
        ------
        InputError
            No geocoder, no match, or a weak match (``detail['candidates']``).
        """
        if self.geocoder is None:
            raise InputError(
                "a location or a geocodable address is required: this city has no address "
                "data to geocode with; send a location {lon, lat}",
                detail={"field": "address", "reason": "no geocoder"},
            )
        result = self.geocoder.geocode(address)
        best = result.best
        if result.matched and best is not None:
            return Located(
                float(best.lon), float(best.lat), "geocoded", float(best.confidence), best.label
            )
        candidates = [_candidate(c) for c in (result.candidates or [])[:MAX_CANDIDATES]]
        if candidates:
            raise InputError(
                "the address matched no place confidently; send a location {lon, lat} or "
                f"one of {len(candidates)} candidates",
                detail={"field": "address", "reason": "weak match", "candidates": candidates},
            )
        raise InputError(
            "a location or a geocodable address is required: the address matched nothing",
            detail={"field": "address", "reason": "no match"},
        )


def route_located(
    router: Router, located: Located, *, k: int, category: str | None = None
) -> RouteResult:
    """Route a located report or home; the problems of a given point name its request fields
    (``location.lon``, ``location.lat``), the router's hints (a possible axis swap) kept."""
    try:
        return router.route(located.lon, located.lat, category=category, k=k)
    except InvalidCoordinatesError as exc:
        if located.source != "given":
            raise
        detail = dict(exc.detail)
        detail["field"] = _GIVEN_FIELDS.get(str(detail.get("field")), detail.get("field"))
        detail["errors"] = [
            {**error, "field": _GIVEN_FIELDS.get(error.get("field"), error.get("field"))}
            for error in detail.get("errors") or []
        ]
        raise InvalidCoordinatesError(exc.message, detail=detail) from None
