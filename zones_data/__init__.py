"""The demo city "Kota Contoh": its generator and its files, shipped as package data."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: The folder holding the demo city's profile and layers (inside the installed package).
DEMO_CITY_DIR = Path(str(files(__name__) / "demo_city"))

#: The demo city's profile: the one served when no other city is named.
DEMO_CITY_PROFILE = DEMO_CITY_DIR / "city.toml"
