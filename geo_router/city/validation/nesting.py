"""Nesting: every zone of a child layer lies in exactly one zone of its parent layer.

A child nests when at least ``nesting_share`` (99.9 % by default) of its area lies in one parent.
A child that straddles parents (or lies partly outside all of them) by more than the area
threshold is an error naming the parents and their shares; a smaller leftover is a sliver
warning. The same check serves both directions: a new child layer against the current parents,
and a new parent layer against the current children.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
import shapely

from geo_router.city.validation.findings import ERROR, WARNING, Code, Finding
from geo_router.city.validation.geometry import area_text, geojson, to_utm

__all__ = ["Zones", "nesting_findings"]

# Area sums of a perfectly nested child differ from its own area by float noise only.
_RELATIVE_NOISE = 1e-9


class Zones(Protocol):
    """A named set of zones in EPSG:4326 (``layers.ZoneLayer`` is one)."""

    @property
    def name(self) -> str: ...  # noqa: D102 - read-only members of the protocol

    @property
    def ids(self) -> np.ndarray: ...  # noqa: D102

    @property
    def geometries(self) -> np.ndarray: ...  # noqa: D102


def _pair_areas(
    children: np.ndarray, parents: np.ndarray, utm: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(child row, parent row, shared area in m2) of every pair whose interiors meet.

    Shapes are intersected in lon/lat, where the edges are straight as drawn, and only the
    result is projected to measure it: an edge of a child that ends mid-edge of its parent
    would otherwise bulge out of the projected parent by a curvature sliver.
    """
    tree = shapely.STRtree(parents)
    child, parent = tree.query(children, predicate="intersects")
    shared = shapely.area(to_utm(shapely.intersection(children[child], parents[parent]), utm))
    keep = shared > 0
    return child[keep], parent[keep], shared[keep]


def _percent(share: float) -> str:
    """A share as ``62.10%``; ``<0.01%`` rather than a misleading ``0.00%``."""
    return "<0.01%" if 0 < share < 0.00005 else f"{share:.2%}"


def _message(
    child_layer: str,
    child_id: str,
    parent_layer: str,
    shares: list[tuple[str, float]],
    outside: float,
) -> str:
    """``kelurahan 12 lies in 2 kecamatan zones: 62.10% in A, 37.90% in B``."""
    parts = [f"{_percent(share)} in {pid}" for pid, share in shares]
    if outside > 0:
        parts.append(f"{_percent(outside)} outside every {parent_layer} zone")
    return f"{child_layer} {child_id} is not within one {parent_layer} zone: " + ", ".join(parts)


def nesting_findings(
    children: Zones,
    parents: Zones,
    utm: Any,
    *,
    min_area_m2: float,
    nesting_share: float,
    checked_layer: str | None = None,
) -> list[Finding]:
    """Children that do not lie in exactly one parent.

    Parameters
    ----------
    children, parents
        The two layers (valid polygonal zones, EPSG:4326).
    utm
        The CRS areas are measured in.
    min_area_m2
        A child's leftover (area outside its main parent) at or below this is a warning.
    nesting_share
        The share of a child's area that must lie in one parent.
    checked_layer
        The layer being validated; findings about the other layer name it in ``layer``.
    """
    child_geoms = np.asarray(children.geometries, dtype=object)
    child_area = shapely.area(to_utm(child_geoms, utm))
    child, parent, shared = _pair_areas(
        child_geoms, np.asarray(parents.geometries, dtype=object), utm
    )
    pairs = pd.DataFrame({"child": child, "parent": parent, "shared": shared})
    n = len(child_geoms)
    main_parent = np.full(n, -1)
    main_area = np.zeros(n)
    total = np.zeros(n)
    if len(pairs):
        best = pairs.loc[pairs.groupby("child")["shared"].idxmax()]
        main_parent[best["child"].to_numpy()] = best["parent"].to_numpy()
        main_area[best["child"].to_numpy()] = best["shared"].to_numpy()
        sums = pairs.groupby("child")["shared"].sum()
        total[sums.index.to_numpy()] = sums.to_numpy()
    outside = np.maximum(child_area - total, 0.0)
    outside[outside <= _RELATIVE_NOISE * child_area] = 0.0
    leftover = (total - main_area) + outside
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(child_area > 0, main_area / child_area, 1.0)
        outside_share = np.where(child_area > 0, outside / child_area, 0.0)
    flagged = np.flatnonzero(leftover > 0)
    if len(flagged) == 0:
        return []
    main_geoms = np.array(
        [parents.geometries[p] if p >= 0 else shapely.Polygon() for p in main_parent[flagged]],
        dtype=object,
    )
    leftovers = shapely.difference(child_geoms[flagged], main_geoms)
    by_child = pairs.sort_values("shared", ascending=False).groupby("child")
    groups = {int(c): g for c, g in by_child}
    other = None if checked_layer in (None, children.name) else children.name
    findings = []
    for row, shape in zip(flagged, leftovers, strict=True):
        cid = str(children.ids[row])
        group = groups.get(int(row))
        shares = (
            []
            if group is None
            else [
                (str(parents.ids[p]), float(a / child_area[row]))
                for p, a in zip(group["parent"], group["shared"], strict=True)
            ]
        )
        blocking = bool(share[row] < nesting_share and leftover[row] > min_area_m2)
        if blocking:
            code = Code.OUTSIDE_PARENTS if main_parent[row] < 0 else Code.NOT_NESTED
            message = _message(children.name, cid, parents.name, shares, outside_share[row])
        else:
            code = Code.NESTING_SLIVER
            message = (
                f"{children.name} {cid}: {area_text(leftover[row])} m2 "
                f"({1 - share[row]:.4%}) outside {parents.name} {shares[0][0] if shares else '-'}"
            )
        findings.append(
            Finding(
                code=code,
                severity=ERROR if blocking else WARNING,
                message=message,
                ids=(cid, *(pid for pid, _ in shares)),
                location=geojson(shape),
                area_m2=float(leftover[row]),
                layer=other,
                details={
                    "child_layer": children.name,
                    "parent_layer": parents.name,
                    "child": cid,
                    "parents": [{"id": pid, "share": s} for pid, s in shares],
                    "largest_share": float(share[row]),
                    "outside_share": float(outside_share[row]),
                },
            )
        )
    return findings
