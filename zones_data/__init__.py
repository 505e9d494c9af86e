"""The demo city "Kota Contoh": its generator and its files, shipped as package data."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: The folder holding the demo city's profile and layers (inside the installed package).
DEMO_CITY_DIR = Path(str(files(__name__) / "demo_city"))

#: The demo city's profile: the one served when no other city is named.
DEMO_CITY_PROFILE = DEMO_CITY_DIR / "city.toml"

#: Staged-layer examples of the planner workflow (``python -m zones_data.generate_examples``).
EXAMPLES_DIR = Path(str(files(__name__) / "examples"))

#: The demo kelurahan layer with one kelurahan split in two: valid and nested.
KELURAHAN_SPLIT = EXAMPLES_DIR / "kelurahan_split.geojson"

#: The same with an overlap and a nesting error.
KELURAHAN_SPLIT_BROKEN = EXAMPLES_DIR / "kelurahan_split_broken.geojson"
