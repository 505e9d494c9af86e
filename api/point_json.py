"""One routing answer straight from :class:`~geo_router.city.snapshot.PointHits` to JSON bytes.

The single-point hot path. ``dumps(route_result_dict(router.route(...)))`` builds about 25
dataclasses and 25 dicts per answer and lets orjson walk them; here whatever depends only
on a zone or a facility (a layer's whole entry for a point plainly inside one zone, a
responder's id, name and position) is encoded once per snapshot, and an answer is a join of
those fragments around the numbers of that point, formatted by one orjson call. The bytes
are exactly the general encoder's (a property test holds the two together).
"""

from __future__ import annotations

import weakref
from typing import Any

import orjson

from geo_router.city.models import STATUS_CODES, CategoryRoute, ZoneStatus
from geo_router.city.snapshot import CitySnapshot, PointHits

__all__ = ["encode_point_hits"]

_INSIDE = STATUS_CODES.index(ZoneStatus.INSIDE)
_OUTSIDE = STATUS_CODES.index(ZoneStatus.OUTSIDE_COVERAGE)
_STATUS_VALUES = [s.value for s in STATUS_CODES]


class _LayerJSON:
    """One layer's entry fragments: ``"<layer>":{...}`` for the common answers, by zone row."""

    def __init__(self, name: str, version: str, ids: list[str], names: list[str | None]) -> None:
        self.name = name
        self.version = version
        self.ids = ids
        self.names = names
        self.key = orjson.dumps(name) + b":"
        #: per zone row: the whole entry of a point plainly inside that zone
        self.inside = [self._general(z, _INSIDE, [(z, 0.0)]) for z in range(len(ids))]
        self.outside = self._general(-1, _OUTSIDE, [])

    def entry(self, primary: int, status: int, cands: list[tuple[int, float]]) -> bytes:
        """The layer's entry for one lookup answer."""
        if status == _INSIDE and len(cands) == 1 and cands[0] == (primary, 0.0):
            return self.inside[primary]
        if status == _OUTSIDE and not cands:
            return self.outside
        return self._general(primary, status, cands)

    def _general(self, primary: int, status: int, cands: list[tuple[int, float]]) -> bytes:
        ids, names = self.ids, self.names
        entry = {
            "layer": self.name,
            "version": self.version,
            "status": _STATUS_VALUES[status],
            "zone_id": ids[primary] if primary >= 0 else None,
            "name": names[primary] if primary >= 0 else None,
            "candidates": [
                # 0.0 for -0.0 too, as Router.route's shared "inside" candidates have it
                {"zone_id": ids[z], "name": names[z], "distance_m": d if d else 0.0}
                for z, d in cands
            ],
        }
        return self.key + orjson.dumps(entry)


class _FacilityJSON:
    """One facility type's responder templates by facility row: ``%s`` for the two numbers."""

    def __init__(
        self, kind: str, ids: list[str], names: list[str | None], lon: list[float], lat: list[float]
    ) -> None:
        self.open = orjson.dumps(kind) + b":["
        self.template = [
            b'{"facility_type":%s,"facility_id":%s,"name":%s,"distance_m":%%s,"bearing_deg":%%s,'
            b'"lon":%s,"lat":%s}' % tuple(_literal(v) for v in (kind, fid, fname, x, y))
            for fid, fname, x, y in zip(ids, names, lon, lat, strict=True)
        ]


def _literal(value: Any) -> bytes:
    """``value`` as JSON that survives a later ``%`` formatting of its template."""
    return orjson.dumps(value).replace(b"%", b"%%")


class _SnapshotJSON:
    """Every fragment of one snapshot (built on its first answer, dropped with it)."""

    def __init__(self, snap: CitySnapshot) -> None:
        self.layers = {name: _LayerJSON(name, *snap.zone_labels(name)) for name in snap.layers}
        self.facilities = {
            kind: _FacilityJSON(kind, *snap.facility_labels(kind)) for kind in snap.facilities
        }
        self.categories = {code: _category_json(cat) for code, cat in snap.categories.items()}


def _category_json(cat: CategoryRoute) -> bytes:
    return orjson.dumps(
        {
            "code": cat.code,
            "name": cat.name,
            "agency": cat.agency,
            "responders": list(cat.responders),
            "emergency": cat.emergency,
        }
    )


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
    """The GET /v1/route answer: ``dumps(route_result_dict(result, request_id))``'s bytes."""
    frags = _fragments(hits.snapshot)
    numbers: list[Any] = [hits.lon, hits.lat]
    for _kind, ranked in hits.responders:
        for _row, metres, bearing in ranked:
            numbers += (metres, bearing)
    # One orjson call formats every float of the answer (NaN -> null), as dumps would.
    tokens = orjson.dumps(numbers)[1:-1].split(b",")
    layers = frags.layers
    parts = [
        b'{"lon":%s,"lat":%s,"zones":{' % (tokens[0], tokens[1]),
        b",".join([layers[name].entry(p, s, c) for name, p, s, c in hits.zones]),
        b'},"responders":{',
    ]
    t = 2
    opened = []
    for kind, ranked in hits.responders:
        fac = frags.facilities[kind]
        template = fac.template
        entries = []
        for row, _metres, _bearing in ranked:
            entries.append(template[row] % (tokens[t], tokens[t + 1]))
            t += 2
        opened.append(fac.open + b",".join(entries) + b"]")
    parts.append(b",".join(opened))
    cat = hits.category
    parts += (
        b'},"category":',
        b"null" if cat is None else frags.categories.get(cat.code) or _category_json(cat),
        b',"warnings":',
        orjson.dumps([w.value for w in hits.warnings]) if hits.warnings else b"[]",
        b',"request_id":',
        orjson.dumps(request_id),
        b"}",
    )
    return b"".join(parts)
