"""Offline geocoder: Indonesian address text -> a point from the city's address-points layer.

A query is normalised (case, punctuation, ``Jl.``/``Jln``/``Gg.``/``No.``/``Kel.``/``Kec.``
abbreviations) and split into a street, a house number, RT/RW and area names (kelurahan,
kecamatan). The street is matched fuzzily (rapidfuzz) against the normalised street names; the
area names and RT/RW narrow and re-rank the candidates. Every candidate carries a confidence in
0..1; a weak or ambiguous answer comes back with ``matched=False`` and its candidates, never as
a silent guess.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from geo_router.city.profile import AddressPointsSpec, CityProfile
from geo_router.errors import ConfigurationError, ProfileError

__all__ = ["GeocodeCandidate", "GeocodeResult", "Geocoder", "normalize_text"]

#: Confidence factors, multiplied onto the fuzzy street score.
STREET_ONLY_FACTOR = 0.75  #: number missing or not on the street: nearest number / midpoint
AREA_CONFLICT_FACTOR = 0.7  #: the named kelurahan/kecamatan does not hold the street
RT_RW_CONFLICT_FACTOR = 0.9  #: the named RT/RW differs from the address point's
STREET_TYPE_CONFLICT_FACTOR = 0.9  #: "Gang X" asked, "Jalan X" found (or the reverse)
KELURAHAN_ONLY_FACTOR = 0.5
KECAMATAN_ONLY_FACTOR = 0.4
#: Scores below this (0..100) are not street candidates at all.
STREET_SCORE_CUTOFF = 60.0
AREA_SCORE_CUTOFF = 85.0
#: Two different places closer in confidence than this make the answer ambiguous.
AMBIGUITY_MARGIN = 0.05
#: Two candidates farther apart than this (metres, approximately) are different places.
SAME_PLACE_M = 150.0
MAX_CANDIDATES = 5
MAX_QUERY_CHARS = 500

_STREET_TYPES = {"jalan": "jalan", "jl": "jalan", "jln": "jalan", "gang": "gang", "gg": "gang"}
_MARKERS = {
    "no": "#no",
    "nomor": "#no",
    "nomer": "#no",
    "nmr": "#no",
    "kel": "#kel",
    "kelurahan": "#kel",
    "desa": "#kel",
    "ds": "#kel",
    "kec": "#kec",
    "kecamatan": "#kec",
    "kota": "#kota",
    "kab": "#kota",
    "kabupaten": "#kota",
    "provinsi": "#kota",
    "prov": "#kota",
}
# "RT 03/RW 07", "RT.3 RW.7", "rt03 rw07", "RT/RW 03/07".
_RT_RW_PAIR = re.compile(r"\brt\s*[/.]?\s*rw\b[\s.:]*(\d{1,3})\s*/\s*(\d{1,3})")
_RT = re.compile(r"\brt\b[\s.:]*0*(\d{1,3})\b|\brt0*(\d{1,3})\b")
_RW = re.compile(r"\brw\b[\s.:]*0*(\d{1,3})\b|\brw0*(\d{1,3})\b")
_SEPARATORS = re.compile(r"[,;\n\r\t()|]+")
_NON_ALNUM = re.compile(r"[^a-z0-9,/]+")
_LETTER_DIGIT = re.compile(r"(?<=[a-z])(?=\d)")
_HOUSE_NUMBER = re.compile(r"\d{1,5}[a-z]?")


@dataclass(frozen=True, slots=True)
class GeocodeCandidate:
    """One possible location for a query."""

    label: str
    lon: float
    lat: float
    confidence: float  #: 0..1
    street: str
    number: str | None
    kelurahan: str | None
    kecamatan: str | None
    precision: str  #: "address" | "street" | "kelurahan" | "kecamatan"


@dataclass(frozen=True, slots=True)
class GeocodeResult:
    """The geocoder's answer: ``best`` is set only when a candidate exists."""

    query: str
    matched: bool  #: True only for a confident, unambiguous street or address match
    best: GeocodeCandidate | None
    candidates: list[GeocodeCandidate]  #: best first, at most 5

    @property
    def confidence(self) -> float:
        """Confidence of the best candidate, 0.0 when there is none."""
        return self.best.confidence if self.best is not None else 0.0


@dataclass(slots=True)
class _ParsedQuery:
    """The parts found in a query, all normalised."""

    street: str = ""
    street_type: str | None = None
    number: str | None = None
    rt: str | None = None
    rw: str | None = None
    kelurahan: str | None = None  #: normalised kelurahan name found in the text
    kecamatan: str | None = None
    area_words: str = ""  #: free words that may name an area (when no street is found)
    street_is_area: bool = False  #: the street words are also an area name ("Sukajadi")


def normalize_text(text: str) -> str:
    """Lower-case ASCII with single spaces, commas kept as separators.

    Parameters
    ----------
    text
        Any text.

    Returns
    -------
    str
        e.g. ``"Jl. Ir. H. Juanda No.12, RT 3/RW 7"`` -> ``"jl ir h juanda no 12 , rt 3 / rw 7"``.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    lowered = _SEPARATORS.sub(",", ascii_text.lower())
    spaced = _LETTER_DIGIT.sub(" ", _NON_ALNUM.sub(" ", lowered))
    # "/" stays a token for RT/RW pairs ("rt 03 / rw 07"); the parser drops it afterwards.
    return " ".join(spaced.replace(",", " , ").replace("/", " / ").split())


def _name_key(name: str) -> str:
    """A name as a lookup key: normalised words only, no separators."""
    return " ".join(normalize_text(name).replace(",", " ").replace("/", " ").split())


def normalize_number(number: object) -> str | None:
    """A house number as a key: ``"012"`` -> ``"12"``, ``"12 A"`` -> ``"12a"``; None if empty."""
    if number is None or (isinstance(number, float) and np.isnan(number)):
        return None
    key = re.sub(r"[^0-9a-z]", "", str(number).lower()).lstrip("0")
    return key or None


def _split_street_name(name: str) -> tuple[str | None, str]:
    """``"jalan merdeka"`` -> ``("jalan", "merdeka")``; the type is None when absent."""
    words = _name_key(name).split()
    if words and words[0] in _STREET_TYPES:
        return _STREET_TYPES[words[0]], " ".join(words[1:])
    return None, " ".join(words)


def _numeric_part(key: str | None) -> int:
    """Leading digits of a number key, or -1."""
    match = re.match(r"\d+", key or "")
    return int(match.group()) if match else -1


def _optional_column(
    frame: pd.DataFrame, column: str, n: int, *, as_number: bool = False
) -> np.ndarray:
    """An optional text column as an object array (None where missing)."""
    if column not in frame.columns:
        return np.full(n, None, dtype=object)
    values = frame[column].astype(object).where(frame[column].notna(), None)
    if as_number:
        return np.array([normalize_number(v) for v in values], dtype=object)
    texts = [str(v).strip() or None if v is not None else None for v in values]
    return np.array(texts, dtype=object)


def _take_rt_rw(text: str, parsed: _ParsedQuery) -> str:
    """Read and cut out RT/RW; they become separators."""
    pair = _RT_RW_PAIR.search(text)
    if pair:
        parsed.rt, parsed.rw = normalize_number(pair.group(1)), normalize_number(pair.group(2))
        text = text[: pair.start()] + " , " + text[pair.end() :]
    for pattern, attr in ((_RT, "rt"), (_RW, "rw")):
        found = pattern.search(text)
        if found:
            setattr(parsed, attr, normalize_number(found.group(1) or found.group(2)))
            text = text[: found.start()] + " , " + text[found.end() :]
    return text


def _take_street(words: list[str], parsed: _ParsedQuery) -> list[str]:
    """Street words up to the house number; returns the words after it."""
    if words and words[0] in _STREET_TYPES:
        parsed.street_type = _STREET_TYPES[words[0]]
        words = words[1:]
    # "12 Jalan Merdeka": a leading number is the house number.
    if len(words) > 1 and _HOUSE_NUMBER.fullmatch(words[0]) and parsed.number is None:
        parsed.number = normalize_number(words[0])
        words = words[1:]
        if words and words[0] in _STREET_TYPES:
            parsed.street_type = _STREET_TYPES[words[0]]
            words = words[1:]
    for i, word in enumerate(words):
        if _HOUSE_NUMBER.fullmatch(word) and i > 0:
            parsed.street = " ".join(words[:i])
            if parsed.number is None:
                parsed.number = normalize_number(word + _letter_after(words, i + 1))
            return words[i + 1 + bool(_letter_after(words, i + 1)) :]
    street_words = [w for w in words if not w.isdigit()]
    if parsed.street_type is not None or parsed.number is not None:
        parsed.street = " ".join(street_words)
        return []
    # No street type and no number: the words may be a street or an area name.
    parsed.street = " ".join(street_words)
    return words


class Geocoder:
    """Fuzzy address matching against a table of address points (built once, queried often)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        """Index a frame with columns street, number, lon, lat (+ kelurahan, kecamatan, rt, rw).

        Use :meth:`from_points` or :meth:`from_profile`; both check the columns first.
        """
        frame = frame.reset_index(drop=True)
        n = len(frame)
        self._lon = frame["lon"].to_numpy(dtype=float)
        self._lat = frame["lat"].to_numpy(dtype=float)
        self._street = frame["street"].astype(str).to_numpy()
        self._number = frame["number"].map(normalize_number).to_numpy()
        self._number_text = frame["number"].astype(str).str.strip().to_numpy()
        self._kel = _optional_column(frame, "kelurahan", n)
        self._kec = _optional_column(frame, "kecamatan", n)
        self._rt = _optional_column(frame, "rt", n, as_number=True)
        self._rw = _optional_column(frame, "rw", n, as_number=True)
        self._kel_norm = np.array([_name_key(v) if v else "" for v in self._kel], dtype=object)
        self._kec_norm = np.array([_name_key(v) if v else "" for v in self._kec], dtype=object)
        self._build_street_index()
        self._build_area_index()

    # ------------------------------------------------------------------ construction

    def _build_street_index(self) -> None:
        """Street keys (normalised names) -> rows sorted by house number."""
        keys = np.array([_name_key(s) for s in self._street])
        self._street_keys, street_of_row = np.unique(keys, return_inverse=True)
        parts = [_split_street_name(k) for k in self._street_keys]
        self._street_type = [t for t, _ in parts]
        self._street_search = [
            name or key for (_, name), key in zip(parts, self._street_keys, strict=True)
        ]
        # The most common spelling of each street in the data is its display name.
        display = pd.Series(self._street).groupby(street_of_row).agg(lambda s: s.mode().iloc[0])
        self._street_display = display.to_numpy()
        numeric = np.array([_numeric_part(k) for k in self._number])
        order = np.lexsort((numeric, street_of_row))
        bounds = np.searchsorted(street_of_row[order], np.arange(len(self._street_keys) + 1))
        self._street_rows = [order[a:b] for a, b in itertools.pairwise(bounds)]
        self._numeric = numeric
        self._street_of_row = street_of_row
        self._by_number: dict[tuple[int, str], list[int]] = {}
        for row, (street, number) in enumerate(zip(street_of_row, self._number, strict=True)):
            if number is not None:
                self._by_number.setdefault((int(street), number), []).append(row)

    def _build_area_index(self) -> None:
        """Kelurahan / kecamatan names -> their rows' centroid and parent."""
        self._kel_names = sorted({k for k in self._kel_norm if k})
        self._kec_names = sorted({k for k in self._kec_norm if k})
        self._area_words = {
            "kel": {name: i for i, name in enumerate(self._kel_names)},
            "kec": {name: i for i, name in enumerate(self._kec_names)},
        }
        self._max_area_words = max(
            [len(n.split()) for n in self._kel_names + self._kec_names] or [1]
        )

    @classmethod
    def from_points(cls, frame: pd.DataFrame) -> Geocoder:
        """Build from a frame of address points.

        Parameters
        ----------
        frame
            Columns ``street, number, lon, lat`` and optionally ``kelurahan, kecamatan, rt,
            rw``; lon/lat in EPSG:4326.

        Raises
        ------
        ConfigurationError
            A required column is missing, or a row has unusable coordinates.
        """
        missing = [c for c in ("street", "number", "lon", "lat") if c not in frame.columns]
        if missing:
            raise ConfigurationError(
                f"address points lack the column(s) {', '.join(missing)}",
                detail={"missing": missing, "columns": [str(c) for c in frame.columns]},
            )
        frame = frame[frame["street"].notna() & (frame["street"].astype(str).str.strip() != "")]
        lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=float)
        lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=float)
        bad = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ConfigurationError(
                f"address point row {row} has unusable coordinates "
                f"(lon={frame['lon'].iloc[row]!r}, lat={frame['lat'].iloc[row]!r})",
                detail={"row": row, "bad_rows": int(bad.sum())},
            )
        return cls(frame.assign(lon=lon, lat=lat))

    @classmethod
    def from_profile(cls, profile: CityProfile) -> Geocoder:
        """Build from a city profile's ``address_points`` (a CSV, or any file GDAL reads).

        Raises
        ------
        ConfigurationError
            The profile defines no address points.
        ProfileError
            The file cannot be read or lacks a configured field (file and key named).
        """
        spec = profile.address_points
        if spec is None:
            raise ConfigurationError(
                f"city profile {profile.name!r} has no [address_points]; the geocoder needs them",
                detail={"key": "address_points"},
            )
        frame = _read_points(spec)
        fields = {
            "street": spec.street_field,
            "number": spec.number_field,
            "lon": getattr(spec, "lon_field", None) or "lon",
            "lat": getattr(spec, "lat_field", None) or "lat",
            "kelurahan": getattr(spec, "kelurahan_field", None),
            "kecamatan": getattr(spec, "kecamatan_field", None),
            "rt": getattr(spec, "rt_field", None),
            "rw": getattr(spec, "rw_field", None),
        }
        for key, column in fields.items():
            if column is not None and column not in frame.columns:
                raise ProfileError(
                    f"{spec.path}: address_points.{key}_field names column {column!r}, which "
                    f"the file does not have (columns: {', '.join(map(str, frame.columns))})",
                    detail={"file": str(spec.path), "key": f"address_points.{key}_field"},
                )
        renamed = pd.DataFrame({k: frame[c] for k, c in fields.items() if c is not None})
        return cls.from_points(renamed)

    # ------------------------------------------------------------------ querying

    def geocode(self, text: str, *, min_confidence: float = 0.8) -> GeocodeResult:
        """Match address text to address points.

        Parameters
        ----------
        text
            Free address text, e.g. ``"Jl. Merdeka No. 12 RT 03/RW 07, Kel. Sukamaju"``.
        min_confidence
            The best candidate needs at least this confidence to count as ``matched``.

        Returns
        -------
        GeocodeResult
            ``matched`` is True only for an address or street match at or above
            ``min_confidence`` that no other place comes close to; area-only answers
            (kelurahan / kecamatan centroid) are never matched.
        """
        text = text if isinstance(text, str) else str(text)
        parsed = self._parse(normalize_text(text[:MAX_QUERY_CHARS]))
        candidates = self._street_candidates(parsed)
        areas: list[GeocodeCandidate] = []
        if not candidates or candidates[0].confidence < 0.5 or parsed.street_is_area:
            areas = self._area_candidates(parsed)
        # Weak street guesses must not crowd out an area the text really names.
        ranked = _dedupe(sorted(candidates, key=lambda c: -c.confidence))
        candidates = ranked[: MAX_CANDIDATES - len(areas)] + areas
        candidates = sorted(candidates, key=lambda c: -c.confidence)
        best = candidates[0] if candidates else None
        matched = (
            best is not None
            and best.precision in ("address", "street")
            and best.confidence >= min_confidence
            and not _ambiguous(candidates)
        )
        return GeocodeResult(query=text, matched=matched, best=best, candidates=candidates)

    # ------------------------------------------------------------------ parsing

    def _parse(self, normalized: str) -> _ParsedQuery:
        """Split normalised text into street, number, RT/RW and area names."""
        parsed = _ParsedQuery()
        normalized = _take_rt_rw(normalized, parsed).replace("/", " ")
        free: list[str] = []
        for segment in normalized.split(","):
            words = segment.split()
            words = self._take_marked_parts(words, parsed)
            if not words:
                continue
            if parsed.street:
                free.extend(words)
                continue
            rest = _take_street(words, parsed)
            free.extend(rest)
        self._take_area_words(free, parsed)
        # "Sukajadi" alone may be the street or the kecamatan: keep both readings, and do not
        # let the area reading count against the street reading.
        parsed.street_is_area = bool(parsed.street) and parsed.street in (
            parsed.kelurahan,
            parsed.kecamatan,
        )
        return parsed

    def _take_marked_parts(self, words: list[str], parsed: _ParsedQuery) -> list[str]:
        """Consume ``no N``, ``kel X``, ``kec Y``, ``kota Z``; return the unmarked words."""
        out: list[str] = []
        i = 0
        while i < len(words):
            marker = _MARKERS.get(words[i])
            if marker == "#no" and i + 1 < len(words) and _HOUSE_NUMBER.fullmatch(words[i + 1]):
                if parsed.number is None:
                    parsed.number = normalize_number(words[i + 1] + _letter_after(words, i + 2))
                i += 2 + bool(_letter_after(words, i + 2))
                continue
            if marker in ("#kel", "#kec", "#kota"):
                j = i + 1
                while j < len(words) and words[j] not in _MARKERS:
                    j += 1
                name = " ".join(w for w in words[i + 1 : j] if not w.isdigit())
                if marker == "#kel" and name:
                    parsed.kelurahan = parsed.kelurahan or self._match_area(name, "kel")
                elif marker == "#kec" and name:
                    parsed.kecamatan = parsed.kecamatan or self._match_area(name, "kec")
                i = j
                continue
            out.append(words[i])
            i += 1
        return out

    def _take_area_words(self, free: list[str], parsed: _ParsedQuery) -> None:
        """Find kelurahan / kecamatan names among free words (exact n-grams, then fuzzy)."""
        words = [w for w in free if not w.isdigit()]
        parsed.area_words = " ".join(words)
        left: list[str] = []
        i = 0
        while i < len(words):
            for size in range(min(self._max_area_words, len(words) - i), 0, -1):
                gram = " ".join(words[i : i + size])
                if parsed.kelurahan is None and gram in self._area_words["kel"]:
                    parsed.kelurahan = gram
                elif parsed.kecamatan is None and gram in self._area_words["kec"]:
                    parsed.kecamatan = gram
                else:
                    continue
                i += size
                break
            else:
                left.append(words[i])
                i += 1
        if left and parsed.kelurahan is None:
            parsed.kelurahan = self._match_area(" ".join(left), "kel")
        if left and parsed.kecamatan is None and parsed.kelurahan is None:
            parsed.kecamatan = self._match_area(" ".join(left), "kec")

    def _match_area(self, name: str, level: str) -> str | None:
        """The normalised area name closest to ``name`` (or None below the cutoff)."""
        names = self._kel_names if level == "kel" else self._kec_names
        found = process.extractOne(
            name, names, scorer=fuzz.ratio, processor=None, score_cutoff=AREA_SCORE_CUTOFF
        )
        return found[0] if found else None

    # ------------------------------------------------------------------ candidates

    def _street_scores(self, street: str) -> list[tuple[int, float]]:
        """Street ids with a fuzzy score 0..1, best first (at most 8)."""
        if not street or not self._street_search:
            return []
        sort_scores = process.cdist(
            [street], self._street_search, scorer=fuzz.token_sort_ratio, processor=None
        )[0]
        # A subset of the name's words ("juanda" for "ir h juanda") scores a little lower.
        set_scores = process.cdist(
            [street], self._street_search, scorer=fuzz.token_set_ratio, processor=None
        )[0]
        scores = np.maximum(sort_scores, 0.9 * set_scores)
        top = np.argsort(-scores, kind="stable")[:8]
        return [(int(j), float(scores[j]) / 100) for j in top if scores[j] >= STREET_SCORE_CUTOFF]

    def _street_candidates(self, parsed: _ParsedQuery) -> list[GeocodeCandidate]:
        """Address- or street-level candidates for the parsed street."""
        out: list[GeocodeCandidate] = []
        for street_id, score in self._street_scores(parsed.street):
            if parsed.street_type and self._street_type[street_id] not in (
                None,
                parsed.street_type,
            ):
                score *= STREET_TYPE_CONFLICT_FACTOR
            exact = self._by_number.get((street_id, parsed.number or ""), [])
            if exact:
                out.extend(self._candidate(r, score, parsed, "address") for r in exact)
                continue
            rows = self._narrow(self._street_rows[street_id], parsed)
            row = self._nearest_number(rows, parsed.number)
            candidate = self._candidate(row, score * STREET_ONLY_FACTOR, parsed, "street")
            out.append(candidate)
        return out

    def _narrow(self, rows: np.ndarray, parsed: _ParsedQuery) -> np.ndarray:
        """Rows of a street inside the named kelurahan / kecamatan / RT / RW, when any are."""
        for values, wanted in (
            (self._kel_norm, parsed.kelurahan),
            (self._kec_norm, parsed.kecamatan),
            (self._rw, parsed.rw),
            (self._rt, parsed.rt),
        ):
            if wanted is not None:
                inside = rows[values[rows] == wanted]
                if inside.size:
                    rows = inside
        return rows

    def _nearest_number(self, rows: np.ndarray, number: str | None) -> int:
        """The row with the closest house number (same side first), else the middle row."""
        wanted = _numeric_part(number)
        numeric = self._numeric[rows]
        if wanted < 0 or not (numeric >= 0).any():
            return int(rows[len(rows) // 2])
        # Prefer the same side of the street (parity), then the closest number.
        cost = (
            np.abs(numeric - wanted) + 10_000 * (numeric % 2 != wanted % 2) + 10**6 * (numeric < 0)
        )
        return int(rows[np.argmin(cost)])

    def _candidate(
        self, row: int, score: float, parsed: _ParsedQuery, precision: str
    ) -> GeocodeCandidate:
        """A candidate for one address point, confidence adjusted by the area parts."""
        confidence = score * self._area_factor(row, parsed)
        street = str(self._street_display[self._street_of_row[row]])
        number = str(self._number_text[row]) if precision == "address" else None
        kel, kec = self._kel[row], self._kec[row]
        label = street + (f" No. {number}" if number else "")
        label += "".join(f", {p} {v}" for p, v in (("Kel.", kel), ("Kec.", kec)) if v)
        if precision == "street":
            label += f" (near No. {self._number_text[row]})"
        return GeocodeCandidate(
            label=label,
            lon=float(self._lon[row]),
            lat=float(self._lat[row]),
            confidence=round(float(np.clip(confidence, 0.0, 1.0)), 4),
            street=street,
            number=number,
            kelurahan=kel,
            kecamatan=kec,
            precision=precision,
        )

    def _area_factor(self, row: int, parsed: _ParsedQuery) -> float:
        """Penalty when the named kelurahan / kecamatan / RT / RW disagree with the row."""
        factor = 1.0
        if parsed.street_is_area:
            return factor
        if parsed.kelurahan is not None and self._kel_norm[row] not in ("", parsed.kelurahan):
            factor *= AREA_CONFLICT_FACTOR
        if parsed.kecamatan is not None and self._kec_norm[row] not in ("", parsed.kecamatan):
            factor *= AREA_CONFLICT_FACTOR
        for values, wanted in ((self._rt, parsed.rt), (self._rw, parsed.rw)):
            if wanted is not None and values[row] is not None and values[row] != wanted:
                factor *= RT_RW_CONFLICT_FACTOR
        return factor

    def _area_candidates(self, parsed: _ParsedQuery) -> list[GeocodeCandidate]:
        """Kelurahan / kecamatan centroids named in the text (or by the street words)."""
        kel, kec = parsed.kelurahan, parsed.kecamatan
        if kel is None and kec is None and parsed.street:
            kel = parsed.street if parsed.street in self._area_words["kel"] else None
            kec = parsed.street if parsed.street in self._area_words["kec"] else None
            if kel is None and kec is None:
                kel = self._match_area(parsed.street, "kel")
                kec = None if kel else self._match_area(parsed.street, "kec")
        out = []
        if kel:
            out.append(self._area_candidate(self._kel_norm, kel, "kelurahan", parsed))
        if kec:
            out.append(self._area_candidate(self._kec_norm, kec, "kecamatan", parsed))
        return out

    def _area_candidate(
        self, values: np.ndarray, name: str, precision: str, parsed: _ParsedQuery
    ) -> GeocodeCandidate:
        """The centroid of the address points of one kelurahan or kecamatan."""
        rows = np.flatnonzero(values == name)
        if precision == "kelurahan" and parsed.kecamatan is not None:
            in_kec = rows[self._kec_norm[rows] == parsed.kecamatan]
            rows = in_kec if in_kec.size else rows
        kel = self._kel[rows[0]] if precision == "kelurahan" else None
        kec = _most_common(self._kec[rows])
        factor = KELURAHAN_ONLY_FACTOR if precision == "kelurahan" else KECAMATAN_ONLY_FACTOR
        label = ", ".join(f"{p} {v}" for p, v in (("Kel.", kel), ("Kec.", kec)) if v)
        return GeocodeCandidate(
            label=label,
            lon=round(float(self._lon[rows].mean()), 6),
            lat=round(float(self._lat[rows].mean()), 6),
            confidence=factor,
            street="",
            number=None,
            kelurahan=kel,
            kecamatan=kec,
            precision=precision,
        )


def _letter_after(words: Sequence[str], i: int) -> str:
    """A single letter right after a house number ("12 a") belongs to it."""
    return words[i] if i < len(words) and len(words[i]) == 1 and words[i].isalpha() else ""


def _most_common(values: np.ndarray) -> str | None:
    present = [v for v in values if v]
    return max(set(present), key=present.count) if present else None


def _distance_m(a: GeocodeCandidate, b: GeocodeCandidate) -> float:
    """Approximate metres between two candidates (equirectangular; only compared to 150 m)."""
    mean_lat = np.radians((a.lat + b.lat) / 2)
    dx = np.radians(a.lon - b.lon) * np.cos(mean_lat)
    dy = np.radians(a.lat - b.lat)
    return float(6_371_000 * np.hypot(dx, dy))


def _dedupe(candidates: list[GeocodeCandidate]) -> list[GeocodeCandidate]:
    """Drop repeats of the same label (already sorted best first)."""
    seen: set[str] = set()
    out = []
    for c in candidates:
        if c.label not in seen:
            seen.add(c.label)
            out.append(c)
    return out


def _ambiguous(candidates: list[GeocodeCandidate]) -> bool:
    """True when a different place scores within the margin of the best."""
    best = candidates[0]
    return any(
        best.confidence - c.confidence < AMBIGUITY_MARGIN
        and (c.street != best.street or _distance_m(c, best) > SAME_PLACE_M)
        for c in candidates[1:]
    )


def _read_points(spec: AddressPointsSpec) -> pd.DataFrame:
    """The address-points file as text columns (CSV), or with lon/lat from point geometry."""
    path = Path(spec.path)
    try:
        if path.suffix.lower() in (".csv", ".txt"):
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        import geopandas as gpd

        gdf = gpd.read_file(path)
    except (OSError, ValueError) as exc:
        raise ProfileError(
            f"{path}: address_points.path cannot be read ({exc})",
            detail={"file": str(path), "key": "address_points.path"},
        ) from exc
    if gdf.crs is not None:
        gdf = gdf.to_crs(4326)
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    if not getattr(spec, "lon_field", None):
        frame["lon"], frame["lat"] = gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()
    return frame
