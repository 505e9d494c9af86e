"""sealed_homes: a home point is only ever stored as a token; decisions lose every trace of it."""

from __future__ import annotations

import pytest

from geo_router.errors import ConfigurationError
from geo_router.intake.secrets import Secrets
from geo_router.store.sealed_homes import open_home, require_cipher, scrub_decision, seal_home

DECISION = {
    "lon": 107.61234,
    "lat": -6.91234,
    "zones": {
        "kelurahan": {"zone_id": "K1", "candidates": [{"zone_id": "K2", "distance_m": 12.5}]}
    },
    "responders": {"fire_station": [{"facility_id": "F1", "distance_m": 812.0, "bearing_deg": 41}]},
    "location": {"source": "registered_caller", "label": "Jalan Aceh 12"},
    "agency": "DAMKAR",
}


def test_seal_and_open_round_trip() -> None:
    secrets = Secrets.generate()
    token = seal_home(secrets, 107.61234, -6.91234, DECISION)
    assert "107.6" not in token and "6.912" not in token
    home = open_home(secrets, token)
    assert (home.lon, home.lat, home.decision) == (107.61234, -6.91234, DECISION)
    assert "107" not in repr(home)
    assert seal_home(secrets, 1.0, 2.0) != seal_home(secrets, 1.0, 2.0)  # fresh every time
    with pytest.raises(ConfigurationError, match="cannot decrypt"):
        open_home(Secrets.generate(), token)


def test_scrub_decision_drops_every_trace_of_the_point() -> None:
    scrubbed = scrub_decision(DECISION)
    assert scrubbed["lon"] is None and scrubbed["lat"] is None
    assert scrubbed["responders"]["fire_station"][0] == {
        "facility_id": "F1",
        "distance_m": None,
        "bearing_deg": None,
    }
    assert scrubbed["zones"]["kelurahan"]["candidates"][0]["distance_m"] is None
    assert scrubbed["zones"]["kelurahan"]["zone_id"] == "K1"  # zones stay
    assert scrubbed["location"]["label"] is None and scrubbed["agency"] == "DAMKAR"
    assert DECISION["lon"] == 107.61234  # a copy: the input is untouched
    assert scrub_decision({"zones": {"x": None}, "responders": {}}) == {
        "zones": {"x": None},
        "responders": {},
    }


def test_no_cipher_no_home() -> None:
    with pytest.raises(ConfigurationError, match="encrypted"):
        require_cipher(None)
