"""Fast JSON: orjson straight from the result dataclasses, into a plain ``Response``.

FastAPI's default path (``jsonable_encoder`` + pydantic validation of the response) costs
more than routing a point; handlers here return ``Response(content=bytes)`` and document
their shape through ``responses={200: {"model": ...}}`` instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from geo_router.models import STATUS_CODES, BulkRoute, LayerLookup, NearestLookup, ZoneStatus

__all__ = [
    "GEOJSON_MEDIA_TYPE",
    "GeoJSONResponse",
    "ORJSONResponse",
    "dumps",
    "encode_batch_rows",
    "float_tokens",
    "geojson_response",
    "json_response",
]

GEOJSON_MEDIA_TYPE = "application/geo+json"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    """Fallback for types orjson does not know (numpy bools inside lists, paths, sets)."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    return str(obj)


def dumps(obj: Any) -> bytes:
    """Serialize dataclasses, enums, numpy arrays and scalars to JSON bytes (NaN -> null)."""
    return orjson.dumps(obj, option=_OPTIONS, default=_default)


class ORJSONResponse(Response):
    """``application/json`` rendered with :func:`dumps` (for docs: the route's media type)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Render through orjson; bytes pass through untouched."""
        return content if isinstance(content, bytes) else dumps(content)


class GeoJSONResponse(ORJSONResponse):
    """``application/geo+json`` rendered with :func:`dumps`."""

    media_type = GEOJSON_MEDIA_TYPE


def json_response(
    obj: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response built from ``obj`` with orjson."""
    return Response(dumps(obj), status_code, headers, "application/json")


def geojson_response(obj: Any, headers: dict[str, str] | None = None) -> Response:
    """A GeoJSON response built from ``obj`` with orjson."""
    return Response(dumps(obj), 200, headers, GEOJSON_MEDIA_TYPE)


# --- compact batch answers, built column-wise ---------------------------------------------


def _object_array(items: list[bytes]) -> np.ndarray:
    """A 1-D object array of bytes (``np.array`` would make a fixed-width bytes array)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


_STATUS_TOKENS = np.array(
    [orjson.dumps(str(s)) for s in STATUS_CODES], dtype=object
)  # indexed by the bulk status code
_WARNING_TOKENS = _object_array(
    [
        b"[]",
        b'["outside_coverage"]',
        b'["possible_axis_swap"]',
        b'["outside_coverage","possible_axis_swap"]',
    ]
)  # indexed by 2 * axis_swap + outside (of every layer), in the order Router.route uses
_OUTSIDE = STATUS_CODES.index(ZoneStatus.OUTSIDE_COVERAGE)


def float_tokens(values: np.ndarray, decimals: int = 1) -> np.ndarray:
    """Each float as its JSON token (NaN -> ``null``), in one orjson call."""
    if values.size == 0:
        return np.empty(0, dtype=object)
    text = orjson.dumps(np.round(np.asarray(values, np.float64), decimals), option=_OPTIONS)
    return _object_array(text[1:-1].split(b","))


class _IdFragments:
    """Pre-encoded JSON fragments of one layer's or facility set's ids (index -1 -> null)."""

    def __init__(self, ids: np.ndarray, head: bytes) -> None:
        encoded = [orjson.dumps(str(v)) for v in ids.tolist()]
        self.ids = _object_array([*encoded, b"null"])
        self.prefix = _object_array([b'{"id":' + e + head for e in encoded] + [b""])


_FRAGMENT_CACHE: dict[int, tuple[Any, _IdFragments]] = {}


def _fragments(owner: Any, head: bytes) -> _IdFragments:
    """Fragments for a ZoneLayer / FacilitySet, built once per loaded object."""
    hit = _FRAGMENT_CACHE.get(id(owner))
    if hit is not None and hit[0] is owner:
        return hit[1]
    frags = _IdFragments(np.asarray(owner.ids), head)
    if len(_FRAGMENT_CACHE) > 256:  # old snapshots: drop them rather than grow forever
        _FRAGMENT_CACHE.clear()
    _FRAGMENT_CACHE[id(owner)] = (owner, frags)
    return frags


def _layer_columns(name: str, lookup: LayerLookup, layer: Any, first: bool) -> list[Any]:
    """Columns of ``"name":{"id":..,"status":..,"candidates":[..]}`` for every row."""
    frags = _fragments(layer, b',"distance_m":')
    ptr = lookup.cand_ptr
    counts = np.diff(ptr)
    cand = frags.prefix[lookup.cand_zone] + float_tokens(lookup.cand_dist_m) + b"}"
    cands = np.full(counts.size, b"", dtype=object)
    one = counts == 1
    cands[one] = cand[ptr[:-1][one]]
    for i in np.flatnonzero(counts > 1):  # only rows near a boundary: few
        cands[i] = b",".join(cand[ptr[i] : ptr[i + 1]].tolist())
    head = (b"" if first else b",") + orjson.dumps(name) + b':{"id":'
    return [
        head,
        frags.ids[lookup.primary],
        b',"status":',
        _STATUS_TOKENS[lookup.status],
        b',"candidates":[',
        cands,
        b"]}",
    ]


def _responder_columns(ftype: str, nearest: NearestLookup, fs: Any, first: bool) -> list[Any]:
    """Columns of ``"type":[{"id":..,"distance_m":..,"bearing_deg":..}, ...]``."""
    frags = _fragments(fs, b',"distance_m":')
    cols: list[Any] = [(b"" if first else b",") + orjson.dumps(ftype) + b":["]
    for j in range(nearest.index.shape[1]):
        idx = nearest.index[:, j]
        entry = (
            frags.prefix[idx]
            + float_tokens(nearest.distance_m[:, j])
            + b',"bearing_deg":'
            + float_tokens(nearest.bearing_deg[:, j])
            + b"}"
        )
        if j:
            entry = b"," + entry
        cols.append(np.where(idx >= 0, entry, b""))
    cols.append(b"]")
    return cols


def encode_batch_rows(
    bulk: BulkRoute,
    layers: dict[str, Any],
    facilities: dict[str, Any],
    reasons: list[str | None] | None = None,
) -> bytes:
    """The compact JSON rows of a bulk routing, comma-separated, in input order.

    Each row is ``{"zones": {layer: {"id", "status", "candidates": [{"id", "distance_m"}]}},
    "responders": {type: [{"id", "distance_m", "bearing_deg"}]}, "warnings": [...]}``; a row
    whose coordinates were unusable is ``{"error": reason}``. Built column-wise from
    pre-encoded fragments and joined once: no per-point dicts.

    Parameters
    ----------
    bulk
        ``Router.route_many`` output.
    layers, facilities
        The snapshot's ``ZoneLayer`` and ``FacilitySet`` objects by name (those to include).
    reasons
        Per-row reasons that override ``bulk.reasons`` (e.g. rows that were not pairs).
    """
    n = bulk.n
    if n == 0:
        return b""
    columns: list[Any] = [b'{"zones":{']
    outside = np.ones(n, dtype=bool)
    for i, (name, layer) in enumerate(layers.items()):
        lookup = bulk.layers[name]
        columns += _layer_columns(name, lookup, layer, first=i == 0)
        outside &= lookup.status == _OUTSIDE
    columns.append(b'},"responders":{')
    for i, (ftype, fs) in enumerate(facilities.items()):
        columns += _responder_columns(ftype, bulk.nearest[ftype], fs, first=i == 0)
    columns.append(b'},"warnings":')
    columns.append(_WARNING_TOKENS[2 * np.asarray(bulk.axis_swap, dtype=np.intp) + outside])
    columns.append(b"},")
    grid = np.empty((n, len(columns)), dtype=object)
    for j, col in enumerate(columns):
        grid[:, j] = col
    bad = np.flatnonzero(~np.asarray(bulk.valid, dtype=bool))
    if bad.size:
        why = reasons if reasons is not None else bulk.reasons
        grid[bad, 1:] = b""
        grid[bad, 0] = _object_array(
            [b'{"error":' + orjson.dumps(why[i] or "invalid coordinates") + b"}," for i in bad]
        )
    return b"".join(grid.ravel().tolist())[:-1]
