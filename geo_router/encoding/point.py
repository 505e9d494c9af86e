"""One routing answer straight from :class:`~geo_router.city.snapshot.PointHits` to JSON bytes.

The single-point hot path. ``dumps(route_result_dict(router.route(...)))`` builds about 25
dataclasses and 25 dicts per answer and lets orjson walk them; here whatever depends only
on a zone or a facility (a layer's whole entry for a point plainly inside one zone, a
responder's id, name and position) is encoded once per snapshot, and an answer is a join of
those fragments around the numbers of that point, formatted by one orjson call.

Every fragment is made by the general encoder's builders (:mod:`geo_router.encoding.json`)
from the snapshot's own conversion of row numbers to the model (``LayerTable.match``,
``FacilityTable.responder``), so this module lists no field of the answer: a field added to
the model and its builder reaches both encoders. A property test holds the bytes equal.
"""

from __future__ import annotations

import weakref

import orjson

from geo_router.city.models import STATUS_CODES, CategoryRoute, ZoneStatus
from geo_router.city.snapshot import CitySnapshot, FacilityTable, LayerTable, PointHits
from geo_router.encoding.json import category_dict, responder_dict, result_dict, zone_dict

__all__ = ["encode_point_hits"]

_INSIDE = STATUS_CODES.index(ZoneStatus.INSIDE)
_OUTSIDE = STATUS_CODES.index(ZoneStatus.OUTSIDE_COVERAGE)

#: Stand-ins for a responder's distance and bearing while its template is made: numbers no
#: real answer holds, whose JSON text then becomes the template's two ``%s``.
_MARKS = (1.2345678901234567e300, 7.654321098765432e299)
_MARK_TOKENS = tuple(orjson.dumps(m) for m in _MARKS)


class _LayerJSON:
    """One layer's entry fragments: ``"<layer>":{...}`` for the common answers, by zone row."""

    def __init__(self, table: LayerTable) -> None:
        self.table = table
        self.key = orjson.dumps(table.name) + b":"
        #: per zone row: the whole entry of a point plainly inside that zone
        self.inside = [self._encode(z, _INSIDE, [(z, 0.0)]) for z in range(len(table.ids))]
        self.outside = self._encode(-1, _OUTSIDE, [])

    def entry(self, primary: int, status: int, cands: list[tuple[int, float]]) -> bytes:
        """The layer's entry for one lookup answer."""
        if status == _INSIDE and len(cands) == 1 and cands[0] == (primary, 0.0):
            return self.inside[primary]
        if status == _OUTSIDE and not cands:
            return self.outside
        return self._encode(primary, status, cands)

    def _encode(self, primary: int, status: int, cands: list[tuple[int, float]]) -> bytes:
        return self.key + orjson.dumps(zone_dict(self.table.match(primary, status, cands)))


class _FacilityJSON:
    """One facility type's responder templates by row: ``%s`` for distance and bearing."""

    def __init__(self, table: FacilityTable) -> None:
        self.table = table
        self.open = orjson.dumps(table.kind) + b":["
        self.template = [self._template(row) for row in range(len(table.ids))]

    def _template(self, row: int) -> bytes | None:
        """The row's entry with ``%s`` for the numbers; None if a label holds a mark's text."""
        text = orjson.dumps(responder_dict(self.table.responder(row, *_MARKS)))
        if any(text.count(token) != 1 for token in _MARK_TOKENS):
            return None
        text = text.replace(b"%", b"%%")  # the labels' own % signs survive the formatting
        for token in _MARK_TOKENS:
            text = text.replace(token, b"%s")
        return text

    def entry(self, row: int, metres: float, bearing: float, tokens: tuple[bytes, bytes]) -> bytes:
        """The row's entry with its numbers (``tokens``: their JSON text)."""
        template = self.template[row]
        if template is None:
            return orjson.dumps(responder_dict(self.table.responder(row, metres, bearing)))
        return template % tokens


def _category_json(cat: CategoryRoute) -> bytes:
    return orjson.dumps(category_dict(cat))


class _SnapshotJSON:
    """Every fragment of one snapshot (built on its first answer, dropped with it)."""

    def __init__(self, snap: CitySnapshot) -> None:
        self.layers = {name: _LayerJSON(snap.layer_table(name)) for name in snap.layers}
        self.facilities = {
            kind: _FacilityJSON(snap.facility_table(kind)) for kind in snap.facilities
        }
        self.categories = {code: _category_json(cat) for code, cat in snap.categories.items()}


_BY_SNAPSHOT: weakref.WeakKeyDictionary[CitySnapshot, _SnapshotJSON] = weakref.WeakKeyDictionary()

#: The last snapshot answered and its fragments: one identity test per request instead of a
#: weak-reference lookup (a tuple is replaced whole, so threads never see half of one).
_last: tuple[CitySnapshot, _SnapshotJSON] | None = None


def _fragments(snap: CitySnapshot) -> _SnapshotJSON:
    global _last
    last = _last
    if last is not None and last[0] is snap:
        return last[1]
    found = _BY_SNAPSHOT.get(snap)
    if found is None:
        # Two threads may build it at once on a fresh snapshot: the same bytes, one kept.
        found = _BY_SNAPSHOT.setdefault(snap, _SnapshotJSON(snap))
    _last = (snap, found)
    return found


def encode_point_hits(hits: PointHits, request_id: str | None) -> bytes:
    """The routing answer of one point: ``dumps(route_answer_dict(result, request_id))``'s bytes."""
    frags = _fragments(hits.snapshot)
    numbers: list[float] = []
    for _kind, ranked in hits.responders:
        for _row, metres, bearing in ranked:
            numbers += (metres, bearing)
    # One orjson call formats every distance and bearing (NaN -> null), as dumps would.
    tokens = orjson.dumps(numbers)[1:-1].split(b",")
    layers = frags.layers
    zones = b",".join([layers[name].entry(p, s, c) for name, p, s, c in hits.zones])
    t = 0
    lists = []
    for kind, ranked in hits.responders:
        fac = frags.facilities[kind]
        entries = []
        for row, metres, bearing in ranked:
            entries.append(fac.entry(row, metres, bearing, (tokens[t], tokens[t + 1])))
            t += 2
        lists.append(fac.open + b",".join(entries) + b"]")
    cat = hits.category
    category = b"null" if cat is None else frags.categories.get(cat.code) or _category_json(cat)
    answer = result_dict(
        hits.lon,
        hits.lat,
        orjson.Fragment(b"{" + zones + b"}"),
        orjson.Fragment(b"{" + b",".join(lists) + b"}"),
        orjson.Fragment(category),
        hits.warnings,
    )
    answer["request_id"] = request_id  # as route_answer_dict has it
    return orjson.dumps(answer)
