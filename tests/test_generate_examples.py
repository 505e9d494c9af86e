"""The staged-layer examples regenerate byte for byte from the committed demo city."""

from __future__ import annotations

from pathlib import Path

import shapely

from zones_data import EXAMPLES_DIR
from zones_data.generate_examples import BROKEN_FILE, SPLIT_FILE, build, chord_split


def test_examples_regenerate_identically(tmp_path: Path) -> None:
    build(tmp_path)
    for name in (SPLIT_FILE, BROKEN_FILE):
        assert (tmp_path / name).read_bytes() == (EXAMPLES_DIR / name).read_bytes(), name


def test_chord_split_keeps_every_vertex_and_the_area() -> None:
    square = shapely.Polygon([(0, 0), (1, 0), (2, 0), (2, 1), (2, 2), (1, 2), (0, 2), (0, 1)])
    first, second = chord_split(square)
    assert first.is_valid and second.is_valid
    assert abs(first.area + second.area - square.area) < 1e-12
    assert shapely.union(first, second).equals(square)
    assert not first.overlaps(second) or shapely.intersection(first, second).area == 0
