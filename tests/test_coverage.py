"""Coverage: a layer covers its reference exactly, up to slivers."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo_router.city.coords import local_utm
from geo_router.city.validation import ERROR, WARNING, Code
from geo_router.city.validation.coverage import coverage_findings

X0, Y0, STEP = 107.60, -6.92, 0.01
UTM = local_utm(X0, Y0)
CITY = shapely.box(X0, Y0, X0 + 2 * STEP, Y0 + STEP)


def zones(*boxes: tuple[float, float, float, float]) -> np.ndarray:
    return np.array([shapely.box(*b) for b in boxes], dtype=object)


def test_an_exact_cover_has_no_finding() -> None:
    exact = zones((X0, Y0, X0 + STEP, Y0 + STEP), (X0 + STEP, Y0, X0 + 2 * STEP, Y0 + STEP))
    assert coverage_findings(exact, CITY, UTM, 1.0) == []


def test_uncovered_and_outside_parts_are_errors_with_area_and_shape() -> None:
    short = zones((X0, Y0, X0 + STEP, Y0 + STEP), (X0 + STEP, Y0, X0 + 1.5 * STEP, Y0 + 1.2 * STEP))
    found = coverage_findings(short, CITY, UTM, 1.0, reference_label="the city")
    codes = {str(f.code): f for f in found}
    uncovered, outside = codes["uncovered"], codes["outside_coverage"]
    assert uncovered.severity == outside.severity == ERROR
    assert uncovered.area_m2 == pytest.approx(0.5 * 1105.4**2, rel=0.01)
    assert outside.area_m2 == pytest.approx(0.5 * 0.2 * 1105.4**2, rel=0.01)
    hole = shapely.box(X0 + 1.5 * STEP, Y0, X0 + 2 * STEP, Y0 + STEP)
    assert shapely.geometry.shape(uncovered.location).symmetric_difference(hole).area < 1e-12
    assert "of the city that no zone covers" in uncovered.message


def test_a_sliver_below_the_threshold_is_a_warning() -> None:
    nearly = zones((X0, Y0, X0 + 2 * STEP - 1e-7, Y0 + STEP))  # a 1 cm strip missing: ~12 m2
    (sliver,) = coverage_findings(nearly, CITY, UTM, 100.0)
    assert sliver.code == Code.UNCOVERED_SLIVER and sliver.severity == WARNING
    (error,) = coverage_findings(nearly, CITY, UTM, 1.0)
    assert error.code == Code.UNCOVERED
