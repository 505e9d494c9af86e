"""The single-point encoder gives exactly the general encoder's bytes."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import orjson
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_router.city.router import Router
from geo_router.encoding.json import dumps, route_answer_dict
from geo_router.encoding.point import encode_point_hits


def _general(router: Any, lon: float, lat: float, category: str | None, k: int) -> bytes:
    return dumps(route_answer_dict(router.route(lon, lat, category=category, k=k), "rid-1"))


def _fast(router: Any, lon: float, lat: float, category: str | None, k: int) -> bytes:
    return encode_point_hits(router.route_hits(lon, lat, category=category, k=k), "rid-1")


def _box(router: Any) -> tuple[float, float, float, float]:
    xmin, ymin, xmax, ymax = router.snapshot.coverage_bounds
    return xmin - 0.02, ymin - 0.02, xmax + 0.02, ymax + 0.02


@settings(max_examples=300, deadline=None)
@given(
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
    k=st.integers(1, 5),
    pick=st.integers(0, 100),
)
def test_same_bytes_anywhere_in_and_around_the_city(
    demo_router: Any, fx: float, fy: float, k: int, pick: int
) -> None:
    xmin, ymin, xmax, ymax = _box(demo_router)
    lon, lat = xmin + fx * (xmax - xmin), ymin + fy * (ymax - ymin)
    codes = [None, *demo_router.snapshot.categories]
    category = codes[pick % len(codes)]
    assert _fast(demo_router, lon, lat, category, k) == _general(demo_router, lon, lat, category, k)


def test_same_bytes_on_boundaries_and_vertices(demo_router: Any) -> None:
    """Near-boundary answers (several candidates, distances) take the general entry path."""
    statuses: set[str] = set()
    for layer in demo_router.snapshot.layers.values():
        xy = shapely.get_coordinates(layer.geometries)[::97]
        for lon, lat in np.vstack([xy, xy + 3e-5]).tolist():
            fast = _fast(demo_router, lon, lat, None, 3)
            assert fast == _general(demo_router, lon, lat, None, 3)
            statuses |= {z["status"] for z in orjson.loads(fast)["zones"].values()}
    assert {"inside", "near_boundary"} <= statuses


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(0.0, 0.0), (-179.9, 89.9), (107.6, -6.9)],  # outside coverage twice, inside
)
def test_same_bytes_with_and_without_warnings(demo_router: Any, lon: float, lat: float) -> None:
    assert _fast(demo_router, lon, lat, None, 2) == _general(demo_router, lon, lat, None, 2)


def test_answer_is_json_with_the_request_id(demo_router: Any) -> None:
    body = orjson.loads(encode_point_hits(demo_router.route_hits(107.6, -6.9), "abc"))
    assert body["request_id"] == "abc"
    assert set(body) == {"lon", "lat", "zones", "responders", "category", "warnings", "request_id"}


def test_percent_signs_in_names_survive(demo_router: Any) -> None:
    """Responder entries are ``%`` templates: a name holding ``%s`` must come out verbatim."""
    snap = demo_router.snapshot
    kind = next(iter(snap.facilities))
    names = snap.facility_labels(kind)[1]
    saved = list(names)
    try:
        names[:] = [f"100%s {n} 5%" for n in saved]  # labels are per snapshot: patch, restore
        fresh = Router(dataclasses.replace(snap))
        assert _fast(fresh, 107.6, -6.9, None, 3) == _general(fresh, 107.6, -6.9, None, 3)
        assert b"100%s " in _fast(fresh, 107.6, -6.9, None, 3)
    finally:
        names[:] = saved
