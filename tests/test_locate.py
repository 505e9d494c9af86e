"""The one rule for where a report or a home is: point, else address, else caller's home."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from geo_router.errors import InputError
from geo_router.intake.locate import Caller, Located, Locator
from geo_router.intake.phones import PhoneNumber
from geo_router.store.subscribers_repo import Home, Registration

PHONE = PhoneNumber("+6281234567890", "+62812****7890", "hash-1")


@dataclass
class FakeSubscribers:
    """Registrations by phone hash (the repository's ``registration``)."""

    known: dict[str, Registration] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def registration(self, phone_hash: str) -> Registration | None:
        self.asked.append(phone_hash)
        return self.known.get(phone_hash)


class FakeGeocoder:
    """'Jalan Aceh 1' matches; 'Jalan Ace' is weak; anything else matches nothing."""

    def geocode(self, text: str) -> Any:
        best = SimpleNamespace(lon=107.64, lat=-6.85, confidence=0.9, label="Jalan Aceh 1")
        if text == "Jalan Aceh 1":
            return SimpleNamespace(matched=True, best=best, candidates=[best])
        if text == "Jalan Ace":
            return SimpleNamespace(matched=False, best=best, candidates=[best] * 7)
        return SimpleNamespace(matched=False, best=None, candidates=[])


def _locator(registration: Registration | None = None) -> Locator:
    """A locator knowing PHONE's registration (if any) and FakeGeocoder's addresses."""
    subscribers = FakeSubscribers({"hash-1": registration} if registration else {})
    return Locator(subscribers, FakeGeocoder())  # type: ignore[arg-type]


def _caller(locator: Locator) -> Caller:
    return locator.caller(PHONE)


HOME = Registration("s1", Home(107.61, -6.91, "geocoded", 0.8))


def test_order_point_then_address_then_home() -> None:
    locator = _locator(HOME)
    caller = _caller(locator)
    assert caller.registered and caller.registration == HOME
    given = locator.locate(point=(107.6, -6.9), address="Jalan Aceh 1", caller=caller)
    assert given == Located(107.6, -6.9, "given", 1.0)
    geocoded = locator.locate(address="Jalan Aceh 1", caller=caller)
    assert geocoded == Located(107.64, -6.85, "geocoded", 0.9, "Jalan Aceh 1")
    home = locator.locate(caller=caller)
    assert home == Located(107.61, -6.91, "registered_caller", 0.8)


def test_a_given_home_is_certain() -> None:
    locator = _locator(Registration("s1", Home(107.61, -6.91, "given", None)))
    assert locator.locate(caller=_caller(locator)).confidence == 1.0


def test_caller_is_looked_up_once_by_hash() -> None:
    subscribers = FakeSubscribers({"hash-1": HOME})
    locator = Locator(subscribers, None)  # type: ignore[arg-type]
    caller = locator.caller(PHONE)
    locator.locate(caller=caller)
    assert subscribers.asked == ["hash-1"]


@pytest.mark.parametrize("registration", [None, Registration("s1", None)])
def test_unlocatable_caller(registration: Registration | None) -> None:
    locator = _locator(registration)  # not registered, or registered without a home
    with pytest.raises(InputError, match="cannot locate") as info:
        locator.locate(caller=_caller(locator))
    assert "not a registered caller with a location" in info.value.detail["reason"]


def test_nothing_to_locate_by() -> None:
    with pytest.raises(InputError, match="location or a geocodable address is required") as info:
        _locator().locate()
    assert info.value.detail["field"] == "location"


def test_address_errors() -> None:
    with pytest.raises(InputError) as weak:
        _locator().locate(address="Jalan Ace")
    assert weak.value.detail["reason"] == "weak match"
    assert len(weak.value.detail["candidates"]) == 5
    assert weak.value.detail["candidates"][0]["label"] == "Jalan Aceh 1"
    with pytest.raises(InputError, match="matched nothing"):
        _locator().locate(address="Nowhere 99")
    no_geocoder = Locator(FakeSubscribers(), None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no address data") as info:
        no_geocoder.locate(address="Jalan Aceh 1")
    assert info.value.detail["reason"] == "no geocoder"
