"""One routing answer straight from :class:`~geo_router.router.PointHits` to JSON bytes.

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

from geo_router.models import STATUS_CODES, CategoryRoute, ZoneStatus
from geo_router.router import CitySnapshot, PointHits

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
    """One facility type's responder fragments by facility row: before and after the numbers."""

    def __init__(
        self, kind: str, ids: list[str], names: list[str | None], lon: list[float], lat: list[float]
    ) -> None:
        self.open = orjson.dumps(kind) + b":["
        kind_json = orjson.dumps(kind)
        self.head = [
            b'{"facility_type":'
            + kind_json
            + b',"facility_id":'
            + orjson.dumps(fid)
            + b',"name":'
            + orjson.dumps(fname)
            + b',"distance_m":'
            for fid, fname in zip(ids, names, strict=True)
        ]
        self.tail = [
            b',"lon":' + orjson.dumps(x) + b',"lat":' + orjson.dumps(y) + b"}"
            for x, y in zip(lon, lat, strict=True)
        ]


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


def _fragments(snap: CitySnapshot) -> _SnapshotJSON:
    found = _BY_SNAPSHOT.get(snap)
    if found is None:
        # Two threads may build it at once on a fresh snapshot: the same bytes, one kept.
        found = _BY_SNAPSHOT.setdefault(snap, _SnapshotJSON(snap))
    return found


def encode_point_hits(hits: PointHits, request_id: str | None) -> bytes:
    """The GET /v1/route answer: ``dumps(route_result_dict(result, request_id))``'s bytes."""
    frags = _fragments(hits.snapshot)
    numbers: list[Any] = [hits.lon, hits.lat]
    for _kind, ranked in hits.responders:
        for _row, metres, bearing in ranked:
            numbers.append(metres)
            numbers.append(bearing)
    # One orjson call formats every float of the answer (NaN -> null), as dumps would.
    tokens = orjson.dumps(numbers)[1:-1].split(b",")
    parts = [b'{"lon":', tokens[0], b',"lat":', tokens[1], b',"zones":{']
    layers = frags.layers
    for i, (name, primary, status, cands) in enumerate(hits.zones):
        if i:
            parts.append(b",")
        parts.append(layers[name].entry(primary, status, cands))
    parts.append(b'},"responders":{')
    t = 2
    for i, (kind, ranked) in enumerate(hits.responders):
        fac = frags.facilities[kind]
        parts.append(fac.open if i == 0 else b"]," + fac.open)
        for m, (row, _metres, _bearing) in enumerate(ranked):
            if m:
                parts.append(b",")
            parts += (fac.head[row], tokens[t], b',"bearing_deg":', tokens[t + 1], fac.tail[row])
            t += 2
    if hits.responders:
        parts.append(b"]")
    cat = hits.category
    parts += (
        b'},"category":',
        b"null" if cat is None else frags.categories.get(cat.code) or _category_json(cat),
        b',"warnings":',
        orjson.dumps([w.value for w in hits.warnings]),
        b',"request_id":',
        orjson.dumps(request_id),
        b"}",
    )
    return b"".join(parts)
