"""Fast JSON: orjson straight from the result dataclasses, into a plain ``Response``.

FastAPI's default path (``jsonable_encoder`` + pydantic validation of the response) costs
more than routing a point; handlers here return ``Response(content=bytes)`` and document
their shape through ``responses={200: {"model": ...}}`` instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.responses import JSONResponse, Response

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
    "route_result_dict",
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


class ORJSONResponse(JSONResponse):
    """``application/json`` rendered with :func:`dumps`.

    A ``JSONResponse`` subclass so that FastAPI documents routes using it as JSON (with the
    model given in ``responses``) rather than as a plain string.
    """

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


# --- single answers ---------------------------------------------------------------------
#
# orjson serializes slotted dataclasses through per-field attribute lookups, ~5x slower than
# plain dicts (measured: 50-85 us vs 11-14 us for one RouteResult); building the dicts by
# hand costs less than the difference.


def _zone_dict(m: Any) -> dict[str, Any]:
    return {
        "layer": m.layer,
        "version": m.version,
        "status": m.status.value,
        "zone_id": m.zone_id,
        "name": m.name,
        "candidates": [
            {"zone_id": c.zone_id, "name": c.name, "distance_m": c.distance_m} for c in m.candidates
        ],
    }


def _responder_dict(r: Any) -> dict[str, Any]:
    return {
        "facility_type": r.facility_type,
        "facility_id": r.facility_id,
        "name": r.name,
        "distance_m": r.distance_m,
        "bearing_deg": r.bearing_deg,
        "lon": r.lon,
        "lat": r.lat,
    }


def route_result_dict(result: Any, request_id: str | None) -> dict[str, Any]:
    """A ``RouteResult`` as plain dicts (same shape as the dataclass) plus the request id."""
    cat = result.category
    return {
        "lon": result.lon,
        "lat": result.lat,
        "zones": {name: _zone_dict(m) for name, m in result.zones.items()},
        "responders": {
            kind: [_responder_dict(r) for r in rs] for kind, rs in result.responders.items()
        },
        "category": None
        if cat is None
        else {
            "code": cat.code,
            "name": cat.name,
            "agency": cat.agency,
            "responders": list(cat.responders),
            "emergency": cat.emergency,
        },
        "warnings": [w.value if hasattr(w, "value") else w for w in result.warnings],
        "request_id": request_id,
    }


# --- compact batch answers, built column-wise ---------------------------------------------
#
# A batch answer is assembled as an (n rows x m pieces) grid of pre-encoded byte fragments
# that is joined once. Whatever depends only on a zone or a facility (ids, the whole answer
# of a point plainly inside one zone) is encoded once per zone and picked by fancy indexing;
# only distances and bearings are formatted per row, by one orjson call per column.


def _object_array(items: list[bytes]) -> np.ndarray:
    """A 1-D object array of bytes (``np.array`` would make a fixed-width bytes array)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


_INSIDE = STATUS_CODES.index(ZoneStatus.INSIDE)
_OUTSIDE = STATUS_CODES.index(ZoneStatus.OUTSIDE_COVERAGE)
_INVALID = STATUS_CODES.index(ZoneStatus.INVALID)
_STATUS_TOKENS = _object_array([orjson.dumps(str(s)) for s in STATUS_CODES])
_WARNING_TOKENS = _object_array(
    [
        b"[]",
        b'["outside_coverage"]',
        b'["possible_axis_swap"]',
        b'["outside_coverage","possible_axis_swap"]',
    ]
)  # indexed by 2 * axis_swap + outside (of every layer), in the order Router.route uses


def float_tokens(values: np.ndarray, decimals: int = 1) -> np.ndarray:
    """Each float as its JSON token (NaN -> ``null``), in one orjson call."""
    if values.size == 0:
        return np.empty(0, dtype=object)
    text = orjson.dumps(np.round(np.asarray(values, np.float64), decimals), option=_OPTIONS)
    return _object_array(text[1:-1].split(b","))


class _LayerFragments:
    """One layer's per-zone fragments: the id, a candidate, the whole plain-inside answer."""

    def __init__(self, name: str, ids: np.ndarray, first: bool) -> None:
        key = (b"" if first else b",") + orjson.dumps(name)
        encoded = [orjson.dumps(str(v)) for v in ids.tolist()]
        self.id_json = _object_array([*encoded, b"null"])  # row -1 -> null
        self.candidate = _object_array([b'{"id":' + e + b',"distance_m":' for e in encoded])
        self.inside = _object_array(
            [
                key
                + b':{"id":'
                + e
                + b',"status":"inside","candidates":[{"id":'
                + e
                + b',"distance_m":0.0}]}'
                for e in encoded
            ]
        )
        self.head = key + b':{"id":'
        self.outside_empty = key + b':{"id":null,"status":"outside_coverage","candidates":[]}'


class _FacilityFragments:
    """One facility set's per-facility entry openings (first entry, later entries)."""

    def __init__(self, ids: np.ndarray) -> None:
        encoded = [orjson.dumps(str(v)) for v in ids.tolist()]
        self.first = _object_array([b'{"id":' + e + b',"distance_m":' for e in encoded] + [b""])
        self.later = _object_array([b',{"id":' + e + b',"distance_m":' for e in encoded] + [b""])


_FRAGMENT_CACHE: dict[tuple[int, str, bool], tuple[Any, Any]] = {}


def _cached(owner: Any, name: str, first: bool, build: Any) -> Any:
    """Fragments for a ZoneLayer / FacilitySet, built once per loaded object."""
    key = (id(owner), name, first)
    hit = _FRAGMENT_CACHE.get(key)
    if hit is not None and hit[0] is owner:
        return hit[1]
    frags = build()
    if len(_FRAGMENT_CACHE) > 256:  # old snapshots: drop them rather than grow forever
        _FRAGMENT_CACHE.clear()
    _FRAGMENT_CACHE[key] = (owner, frags)
    return frags


def _layer_column(name: str, lookup: LayerLookup, layer: Any, first: bool) -> np.ndarray:
    """Each row's ``"name":{"id":..,"status":..,"candidates":[..]}`` as one fragment."""
    frags: _LayerFragments = _cached(
        layer, name, first, lambda: _LayerFragments(name, np.asarray(layer.ids), first)
    )
    ptr = lookup.cand_ptr
    counts = np.diff(ptr)
    starts = ptr[:-1]
    primary = lookup.primary
    status = lookup.status
    out = np.full(counts.size, frags.outside_empty, dtype=object)
    plain = (status == _INSIDE) & (counts == 1)
    rows = np.flatnonzero(plain)
    single = starts[rows]
    same = (lookup.cand_zone[single] == primary[rows]) & (lookup.cand_dist_m[single] == 0.0)
    plain[rows[~same]] = False  # only "inside, one candidate: itself at 0 m" is pre-encoded
    out[plain] = frags.inside[primary[plain]]
    empty_outside = (status == _OUTSIDE) & (counts == 0)
    other = np.flatnonzero(~plain & ~empty_outside & (status != _INVALID))
    if other.size:  # near a boundary, or outside but within tolerance: few rows
        cand = (
            frags.candidate[lookup.cand_zone] + float_tokens(lookup.cand_dist_m) + b"}"
            if lookup.cand_zone.size
            else np.empty(0, dtype=object)
        )
        pieces = frags.id_json[primary[other]].tolist()
        codes = _STATUS_TOKENS[status[other]].tolist()
        for j, i in enumerate(other.tolist()):
            listed = b",".join(cand[starts[i] : starts[i] + counts[i]].tolist())
            out[i] = (
                frags.head
                + pieces[j]
                + b',"status":'
                + codes[j]
                + b',"candidates":['
                + listed
                + b"]}"
            )
    return out


def _responder_columns(ftype: str, nearest: NearestLookup, fs: Any) -> list[Any]:
    """Pieces of ``"type":[{"id":..,"distance_m":..,"bearing_deg":..}, ...]`` per row.

    Five pieces per responder: opening (with the id), distance, a constant, bearing, ``}``;
    an absent responder (index -1) is blanked by the caller via the returned masks.
    """
    frags: _FacilityFragments = _cached(
        fs, ftype, True, lambda: _FacilityFragments(np.asarray(fs.ids))
    )
    cols: list[Any] = []
    for j in range(nearest.index.shape[1]):
        idx = nearest.index[:, j]
        cols += [
            (frags.first if j == 0 else frags.later)[idx],
            float_tokens(nearest.distance_m[:, j]),
            b',"bearing_deg":',
            float_tokens(nearest.bearing_deg[:, j]),
            b"}",
        ]
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
        columns.append(_layer_column(name, lookup, layer, first=i == 0))
        outside &= lookup.status == _OUTSIDE
    absent: list[tuple[int, np.ndarray]] = []  # (first column, rows) of missing responders
    opener = b'},"responders":{'
    for i, (ftype, fs) in enumerate(facilities.items()):
        nearest = bulk.nearest[ftype]
        columns.append(opener + (b"," if i else b"") + orjson.dumps(ftype) + b":[")
        start = len(columns)
        columns += _responder_columns(ftype, nearest, fs)
        for j in range(nearest.index.shape[1]):
            missing = np.flatnonzero(nearest.index[:, j] < 0)
            if missing.size:
                absent.append((start + 5 * j, missing))
        opener = b"]"
    columns.append(opener + b'},"warnings":' if facilities else b'},"responders":{},"warnings":')
    columns.append(_WARNING_TOKENS[2 * np.asarray(bulk.axis_swap, dtype=np.intp) + outside])
    columns.append(b"},")
    grid = np.empty((n, len(columns)), dtype=object)
    for j, col in enumerate(columns):
        grid[:, j] = col
    for first_col, rows in absent:
        grid[rows, first_col : first_col + 5] = b""
    bad = np.flatnonzero(~np.asarray(bulk.valid, dtype=bool))
    if bad.size:
        why = reasons if reasons is not None else bulk.reasons
        grid[bad, 1:] = b""
        grid[bad, 0] = _object_array(
            [b'{"error":' + orjson.dumps(why[i] or "invalid coordinates") + b"}," for i in bad]
        )
    return b"".join(grid.ravel().tolist())[:-1]
