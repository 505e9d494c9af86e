"""Batch encoding pieces give exactly orjson's bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geo_router.encoding.batch import (
    _distance_bearing_columns,
    _distance_bearing_tokens_orjson,
    encode_batch_rows,
)

_metres = st.one_of(
    st.floats(0, 50_000),
    st.floats(0, 1),
    st.floats(0, 3e7),
    st.sampled_from([0.0, 0.05, 0.15, 0.25, 2.5, 999.95, 1000.0, 1000.04, 999_999.96]),
    st.sampled_from([2.0005e7, 2.00051e7, 9.99e14, 1e15, 1e16, 5e20, float("nan")]),
)
_degrees = st.one_of(
    st.floats(0, 360, exclude_max=True),
    st.sampled_from([0.0, 0.05, 359.95, 359.96, 359.999, float("nan")]),
)


def _joined(dist: np.ndarray, bearing: np.ndarray) -> list[bytes]:
    """The pieces of each row, joined."""
    columns = _distance_bearing_columns(dist, bearing)
    return [b"".join(row) for row in zip(*(c.tolist() for c in columns), strict=True)]


@settings(max_examples=200, deadline=None)
@given(
    dist=arrays(np.float64, st.integers(1, 50), elements=_metres),
    data=st.data(),
)
def test_distance_bearing_tokens_match_orjson(dist: np.ndarray, data: st.DataObject) -> None:
    bearing = data.draw(arrays(np.float64, dist.size, elements=_degrees))
    assert _joined(dist, bearing) == _distance_bearing_tokens_orjson(dist, bearing).tolist()


def test_distance_bearing_tokens_on_many_random_values() -> None:
    rng = np.random.default_rng(7)
    dist = rng.uniform(0, 30_000, 100_000)
    bearing = rng.uniform(0, 360, 100_000)
    fast = _joined(dist, bearing)
    assert fast == _distance_bearing_tokens_orjson(dist, bearing).tolist()
    assert fast[0].endswith(b"}") and b',"bearing_deg":' in fast[0]


def test_batch_rows_wrapped_in_head_and_tail_whatever_the_last_row(demo_router: Any) -> None:
    """The last row loses its comma also when it is an error row (its later pieces empty)."""
    lon = np.array([107.6, 107.61, np.nan])
    lat = np.array([-6.9, -6.91, -6.9])
    for rows in (slice(0, 2), slice(0, 3), slice(2, 3)):
        bulk = demo_router.route_many(lon[rows], lat[rows])
        snap = demo_router.snapshot
        out = encode_batch_rows(
            bulk, dict(snap.layers), dict(snap.facilities), head=b"[", tail=b"]"
        )
        answers = orjson.loads(out)
        assert len(answers) == bulk.n
        assert ("error" in answers[-1]) == (rows.stop == 3)
