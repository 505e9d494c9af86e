"""The batch answer as JSON bytes, built column-wise: no dict per point.

A batch answer is assembled as an (n rows x m pieces) grid of pre-encoded byte fragments
that is joined once. Whatever depends only on a zone or a facility (ids, the whole answer
of a point plainly inside one zone, the keys and brackets around them) is encoded once per
zone / facility and picked by fancy indexing; only distances and bearings are formatted per
row, from number tables. Constants are folded into the neighbouring fragments, and rows
plain in every layer take their whole zones part from one pre-joined combination, so a row
of 4 layers and 3 facility types (k=1) is 8 pieces; the join is what costs, per piece.

Each row is the compact form of a routing answer: ``{"zones": {layer: {"id", "status",
"candidates": [{"id", "distance_m"}]}}, "responders": {type: [{"id", "distance_m",
"bearing_deg"}]}, "warnings": [...]}``, or ``{"error": reason}`` for unusable coordinates.
Property tests hold the fragments to orjson's bytes of the same values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from geo_router.city.models import STATUS_CODES, BulkRoute, LayerLookup, Warning, ZoneStatus
from geo_router.encoding.json import category_dict, dumps

if TYPE_CHECKING:
    from geo_router.city.router import Router

__all__ = ["encode_batch_answer", "encode_batch_rows", "encode_zones_column", "float_tokens"]


def _object_array(items: list[bytes]) -> np.ndarray:
    """A 1-D object array of bytes (``np.array`` would make a fixed-width bytes array)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


_INSIDE = STATUS_CODES.index(ZoneStatus.INSIDE)
_OUTSIDE = STATUS_CODES.index(ZoneStatus.OUTSIDE_COVERAGE)
_INVALID = STATUS_CODES.index(ZoneStatus.INVALID)
_STATUS_TOKENS = _object_array([orjson.dumps(str(s)) for s in STATUS_CODES])
_ROW_OPEN = b'{"zones":{'
_WARNING_ORDER = (Warning.OUTSIDE_COVERAGE, Warning.POSSIBLE_AXIS_SWAP)
#: A row's warnings, indexed by 2 * axis_swap + outside (of every layer), in the order
#: Router.route gives them.
_WARNINGS = tuple(
    orjson.dumps([str(w) for w, on in zip(_WARNING_ORDER, (outside, swap), strict=True) if on])
    for swap in (False, True)
    for outside in (False, True)
)
#: The row's tail after the last responder list (or after the zones when no facility type).
_TAIL_AFTER_RESPONDERS = _object_array([b']},"warnings":' + w + b"}," for w in _WARNINGS])
_TAIL_NO_RESPONDERS = _object_array(
    [b'},"responders":{},"warnings":' + w + b"}," for w in _WARNINGS]
)


def float_tokens(values: np.ndarray, decimals: int = 1) -> np.ndarray:
    """Each float as its JSON token (NaN -> ``null``), in one orjson call."""
    if values.size == 0:
        return np.empty(0, dtype=object)
    text = orjson.dumps(
        np.round(np.asarray(values, np.float64), decimals), option=orjson.OPT_SERIALIZE_NUMPY
    )
    return _object_array(text[1:-1].split(b","))


def _distance_bearing_columns(dist: np.ndarray, bearing: np.ndarray) -> list[np.ndarray]:
    """Three piece columns whose concatenation per row is ``<metres>,"bearing_deg":<deg>}``.

    The bytes orjson gives ``np.round(value, 1)`` (NaN -> ``null``), without formatting a
    float or making a bytes object per row: thousands of metres, the last three digits and
    the tenths digit with the bearing (3,601 tenths of a degree) are each picked from a
    table. Rows out of the tables' range (NaN: no facility) take orjson's own path and
    leave the other two pieces empty.
    """
    thousands_table, units_table, tenth_bearing_table = _number_tables()
    d10 = np.rint(np.asarray(dist, dtype=np.float64) * 10.0)
    b10 = np.rint(np.asarray(bearing, dtype=np.float64) * 10.0)
    plain = (d10 >= 0.0) & (d10 < 10_000.0 * thousands_table.size)  # False for NaN
    plain &= (b10 >= 0.0) & (b10 <= 3600.0)
    whole, tenth = np.divmod(np.where(plain, d10, 0.0).astype(np.int64), 10)
    thousands, units = np.divmod(whole, 1000)
    columns = [
        thousands_table[thousands],
        units_table[units + 1000 * (thousands > 0)],  # zero-padded after the thousands
        tenth_bearing_table[tenth * 3601 + np.where(plain, b10, 0.0).astype(np.int64)],
    ]
    odd = np.flatnonzero(~plain)
    if odd.size:
        columns[0][odd] = _distance_bearing_tokens_orjson(dist[odd], bearing[odd])
        columns[1][odd] = b""
        columns[2][odd] = b""
    return columns


def _distance_bearing_tokens_orjson(dist: np.ndarray, bearing: np.ndarray) -> np.ndarray:
    """Per row ``<metres>,"bearing_deg":<degrees>}`` through orjson (any values)."""
    pairs = np.round(np.column_stack((dist, bearing)).astype(np.float64, copy=False), 1)
    text = orjson.dumps(pairs, option=orjson.OPT_SERIALIZE_NUMPY)  # b'[[d,b],[d,b]]'; NaN -> null
    # row breaks become "}|" before the pair commas become the bearing key; numbers and null
    # hold neither "," nor "|"
    text = text[2:-2].replace(b"],[", b"}|").replace(b",", b',"bearing_deg":')
    return _object_array((text + b"}").split(b"|"))


@cache
def _number_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables of :func:`_distance_bearing_columns`, built once (about 1 MB).

    Thousands of metres (``""`` for none, up to the longest geodesic on Earth), the units
    ``0``-``999`` bare then zero-padded, and ``.<tenth>,"bearing_deg":<bearing>}``.
    """
    thousands = _object_array([b""] + [b"%d" % t for t in range(1, 20_005)])
    units = _object_array([b"%d" % u for u in range(1000)] + [b"%03d" % u for u in range(1000)])
    bearings = [orjson.dumps(b10 / 10.0) for b10 in range(3601)]
    tenth_bearing = _object_array(
        [b'.%d,"bearing_deg":%s}' % (tenth, b) for tenth in range(10) for b in bearings]
    )
    return thousands, units, tenth_bearing


class _LayerFragments:
    """One layer's per-zone fragments: the id, a candidate, the whole plain-inside answer.

    ``prefix`` opens the layer's entry: the row opening for the first layer, else a comma.
    """

    def __init__(self, name: str, ids: np.ndarray, prefix: bytes) -> None:
        key = prefix + orjson.dumps(name)
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
        self.simple = _object_array([*self.inside.tolist(), self.outside_empty])


class _FacilityFragments:
    """One facility set's entry openings for one responder column, indexed by row (-1 last).

    Column 0 carries the list opening (``opener``: the key of the type, after the zones or
    the previous type); row -1 there is the opening alone, in later columns nothing.
    """

    def __init__(self, ids: np.ndarray, opener: bytes | None) -> None:
        encoded = [orjson.dumps(str(v)) for v in ids.tolist()]
        lead = b',{"id":' if opener is None else opener + b'{"id":'
        self.entry = _object_array(
            [lead + e + b',"distance_m":' for e in encoded] + [opener or b""]
        )


_FRAGMENT_CACHE: dict[tuple[int, str, bytes], tuple[Any, Any]] = {}


def _cached(owner: Any, name: str, variant: bytes, build: Callable[[], Any]) -> Any:
    """Fragments for a ZoneLayer / FacilitySet, built once per loaded object and variant."""
    key = (id(owner), name, variant)
    hit = _FRAGMENT_CACHE.get(key)
    if hit is not None and hit[0] is owner:
        return hit[1]
    frags = build()
    if len(_FRAGMENT_CACHE) > 256:  # old snapshots: drop them rather than grow forever
        _FRAGMENT_CACHE.clear()
    _FRAGMENT_CACHE[key] = (owner, frags)
    return frags


def _candidate_lists(
    frags: _LayerFragments, lookup: LayerLookup, starts: np.ndarray, counts: np.ndarray
) -> list[bytes]:
    """The comma-joined candidate entries of the given rows (few: near a boundary)."""
    total = int(counts.sum())
    if total == 0:
        return [b""] * counts.size
    ends = np.cumsum(counts)
    pos = np.repeat(starts - (ends - counts), counts) + np.arange(total)
    pieces = (
        frags.candidate[lookup.cand_zone[pos]] + float_tokens(lookup.cand_dist_m[pos]) + b"}"
    ).tolist()
    return [b",".join(pieces[a:b]) for a, b in pairwise([0, *ends.tolist()])]


@dataclass(frozen=True, slots=True)
class _LayerRows:
    """One layer of a batch, classified per row.

    ``code`` is the row's zone for a point plainly inside it, ``size`` (the slot of the
    empty outside answer) for a point outside with no candidate, -1 otherwise; ``other``
    holds the full fragment of the -1 rows that are valid (near a boundary, or outside but
    within the tolerance of a zone), None elsewhere.
    """

    simple: np.ndarray  #: per zone the plain-inside fragment, then the empty-outside one
    size: int
    code: np.ndarray
    other: np.ndarray


def _layer_rows(name: str, lookup: LayerLookup, layer: Any, prefix: bytes) -> _LayerRows:
    """Classify the rows of one layer and encode the few that are not plain."""
    frags: _LayerFragments = _cached(
        layer, name, prefix, lambda: _LayerFragments(name, np.asarray(layer.ids), prefix)
    )
    size = len(frags.inside)
    ptr = lookup.cand_ptr
    counts = np.diff(ptr)
    starts = ptr[:-1]
    primary = lookup.primary
    status = lookup.status
    plain = (status == _INSIDE) & (counts == 1)
    rows = np.flatnonzero(plain)
    single = starts[rows]
    same = (lookup.cand_zone[single] == primary[rows]) & (lookup.cand_dist_m[single] == 0.0)
    plain[rows[~same]] = False  # only "inside, one candidate: itself at 0 m" is pre-encoded
    empty_outside = (status == _OUTSIDE) & (counts == 0)
    code = np.where(plain, primary, np.where(empty_outside, size, -1)).astype(np.int64)
    other_rows = np.flatnonzero(~plain & ~empty_outside & (status != _INVALID))
    other = np.empty(counts.size, dtype=object)
    if other_rows.size:  # near a boundary, or outside but within tolerance: few rows
        listed = _candidate_lists(frags, lookup, starts[other_rows], counts[other_rows])
        other[other_rows] = (
            frags.head
            + frags.id_json[primary[other_rows]]
            + b',"status":'
            + _STATUS_TOKENS[status[other_rows]]
            + b',"candidates":['
            + _object_array(listed)
            + b"]}"
        )
    return _LayerRows(frags.simple, size, code, other)


def encode_zones_column(
    lookups: dict[str, LayerLookup], valid: np.ndarray, layers: dict[str, Any]
) -> np.ndarray:
    """Each row's zone entries (the row opening included) as one fragment.

    Rows plain in every layer (inside one zone, or outside with no candidate) repeat a few
    combinations of zones: each combination is joined once and picked by its index. The
    other rows are concatenated layer by layer. Invalid rows are left None (the caller
    replaces them).

    Parameters
    ----------
    lookups
        Per layer, the bulk lookup of every row (``BulkRoute.layers``).
    valid
        Rows with usable coordinates.
    layers
        The snapshot's ``ZoneLayer`` objects by name (those to include).
    """
    n = valid.size
    parts = [
        _layer_rows(name, lookups[name], layer, _ROW_OPEN if i == 0 else b",")
        for i, (name, layer) in enumerate(layers.items())
    ]
    simple = np.ones(n, dtype=bool)
    key = np.zeros(n, dtype=np.int64)
    if math.prod(part.size + 1 for part in parts) < 2**62:  # else no int64 key: no shortcut
        stride = 1
        for part in parts:
            simple &= part.code >= 0
            key += part.code * stride
            stride *= part.size + 1
    else:
        simple[:] = False
    out = np.empty(n, dtype=object)
    rows = np.flatnonzero(simple)
    if rows.size:
        combos, which = np.unique(key[rows], return_inverse=True)
        columns, stride = [], 1
        for part in parts:
            columns.append(part.simple[(combos // stride) % (part.size + 1)].tolist())
            stride *= part.size + 1
        out[rows] = _object_array([b"".join(c) for c in zip(*columns, strict=True)])[which]
    rest = np.flatnonzero(~simple & np.asarray(valid, dtype=bool))
    if rest.size:
        joined: Any = b""
        for part in parts:
            code = part.code[rest]
            piece = part.other[rest]
            plain = code >= 0
            piece[plain] = part.simple[code[plain]]
            joined = joined + piece
        out[rest] = joined
    return out


def encode_batch_rows(
    bulk: BulkRoute,
    layers: dict[str, Any],
    facilities: dict[str, Any],
    reasons: list[str | None] | None = None,
    zones: np.ndarray | None = None,
    *,
    head: bytes = b"",
    tail: bytes = b"",
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
    zones
        :func:`encode_zones_column` of this bulk and ``layers``, when already made (it can
        be, while ``Router.route_many`` still ranks facilities).
    head, tail
        Bytes around the rows (the rest of the answer), joined with them at once: a
        many-megabyte answer is copied only once.
    """
    n = bulk.n
    if n == 0:
        return head + tail
    if zones is None and layers:
        zones = encode_zones_column(bulk.layers, np.asarray(bulk.valid), layers)
    columns: list[Any] = [zones if layers else _ROW_OPEN]
    outside = np.ones(n, dtype=bool)
    for name in layers:
        outside &= bulk.layers[name].status == _OUTSIDE
    absent: list[tuple[int, np.ndarray]] = []  # (value column, rows) of missing responders
    for i, (ftype, fs) in enumerate(facilities.items()):
        nearest = bulk.nearest[ftype]
        opener = (b'},"responders":{' if i == 0 else b"],") + orjson.dumps(ftype) + b":["
        for j in range(nearest.index.shape[1]):
            variant = opener if j == 0 else b""
            frags: _FacilityFragments = _cached(
                fs, ftype, variant, partial(_FacilityFragments, np.asarray(fs.ids), variant or None)
            )
            idx = nearest.index[:, j]
            columns.append(frags.entry[idx])  # index -1 picks the last entry
            numbers = _distance_bearing_columns(nearest.distance_m[:, j], nearest.bearing_deg[:, j])
            missing = np.flatnonzero(idx < 0)
            if missing.size:
                absent += [(len(columns) + c, missing) for c in range(len(numbers))]
            columns += numbers
    row_tails = _TAIL_AFTER_RESPONDERS if facilities else _TAIL_NO_RESPONDERS
    columns.append(row_tails[2 * np.asarray(bulk.axis_swap, dtype=np.intp) + outside])
    grid = np.empty((n, len(columns)), dtype=object)
    for j, col in enumerate(columns):
        grid[:, j] = col
    for col_j, rows in absent:
        grid[rows, col_j] = b""
    bad = np.flatnonzero(~np.asarray(bulk.valid, dtype=bool))
    if bad.size:
        why = reasons if reasons is not None else bulk.reasons
        grid[bad, 1:] = b""
        grid[bad, 0] = _object_array(
            [b'{"error":' + orjson.dumps(why[i] or "invalid coordinates") + b"}," for i in bad]
        )
    pieces = grid.ravel().tolist()
    last = len(pieces) - 1
    while not pieces[last]:  # an error row's pieces after the first are empty
        last -= 1
    pieces[last] = pieces[last][:-1]  # every row ends with a comma; the last must not
    return b"".join([head, *pieces, tail])


def encode_batch_answer(
    router: Router,
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    k: int = 1,
    category: str | None = None,
    row_errors: list[str | None] | None = None,
    request_id: str | None = None,
) -> bytes:
    """Route a batch against one snapshot and encode the whole answer.

    ``{"count", "category", "request_id", "results": [row, ...]}``, rows in input order. The
    zones column is encoded on this thread while the router's helper thread still ranks
    facilities (``Router.route_many(on_zones=...)``).

    Parameters
    ----------
    router
        The city's router; one snapshot answers the whole batch (names included).
    lon, lat
        The points (NaN where a row was not a pair of numbers).
    k, category
        Responders per facility type; a category ranks only its responder types.
    row_errors
        Per row, why it is unusable before routing (None for the others); such rows answer
        ``{"error": ...}`` in place.
    request_id
        Echoed in the answer.
    """
    snap = router.snapshot
    cat = router.category(category, snapshot=snap) if category is not None else None
    facilities = dict(snap.facilities)
    if cat is not None:  # a category ranks only its responder types, as Router.route does
        facilities = {t: facilities[t] for t in cat.responders if t in facilities}
    layers = dict(snap.layers)
    zones: list[np.ndarray] = []

    def encode_zones(lookups: dict[str, LayerLookup], valid: np.ndarray) -> None:
        zones.append(encode_zones_column(lookups, valid, layers))

    bulk = router.route_many(
        lon, lat, k=k, responder_types=list(facilities), snapshot=snap, on_zones=encode_zones
    )
    reasons = None
    if row_errors is not None and row_errors.count(None) != len(row_errors):
        reasons = [e or r for e, r in zip(row_errors, bulk.reasons, strict=True)]
    head = b'{"count":%d,"category":%s,"request_id":%s,"results":[' % (
        bulk.n,
        dumps(category_dict(cat)),
        dumps(request_id),
    )
    zones_column = zones[0] if zones else None
    return encode_batch_rows(bulk, layers, facilities, reasons, zones_column, head=head, tail=b"]}")
