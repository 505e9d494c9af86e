"""Generate the staged-layer examples of the planner workflow into ``zones_data/examples/``.

Usage::

    python -m zones_data.generate_examples [OUTPUT_DIR]

From the committed demo city (``zones_data/demo_city/``) it writes:

- ``kelurahan_split.geojson``: the kelurahan layer with one kelurahan split in two along a chord
  between two of its own vertices. No vertex moves, so the halves tile the old kelurahan exactly,
  stay inside its kecamatan and match their neighbours: the layer is valid and nested.
- ``kelurahan_split_broken.geojson``: the same, with one half grown into a neighbouring
  kelurahan of another kecamatan: an overlap and a nesting error for the gate to find.

The output depends only on the committed demo files, so a run reproduces the committed examples.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from zones_data.generate_demo_city import DEFAULT_OUT as DEMO_DIR
from zones_data.generate_demo_city import geojson_text

DEFAULT_OUT = Path(__file__).resolve().parent / "examples"
SPLIT_FILE = "kelurahan_split.geojson"
BROKEN_FILE = "kelurahan_split_broken.geojson"
GROW_DEG = 0.002  # radius of the bite the broken half takes from its neighbour (~220 m)


def read_features(path: Path) -> list[dict[str, Any]]:
    """The features of a GeoJSON file, geometry as shapely."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        {"properties": f["properties"], "geometry": shapely.geometry.shape(f["geometry"])}
        for f in data["features"]
    ]


def chord_split(polygon: shapely.Polygon) -> tuple[shapely.Polygon, shapely.Polygon]:
    """Two halves of ``polygon`` cut along a chord between two of its own vertices.

    The first chord (vertex i to vertex i + n/2) that lies inside the polygon and leaves both
    halves valid and between 30 % and 70 % of the area is taken.
    """
    ring = np.asarray(polygon.exterior.coords)[:-1]
    n = len(ring)
    for i in range(n // 2):
        j = i + n // 2
        chord = shapely.LineString([ring[i], ring[j]])
        if not polygon.covers(chord):
            continue
        first = shapely.Polygon(np.vstack([ring[i : j + 1], ring[i : i + 1]]))
        second = shapely.Polygon(np.vstack([ring[j:], ring[: i + 1], ring[j : j + 1]]))
        share = first.area / polygon.area
        if first.is_valid and second.is_valid and 0.3 < share < 0.7:
            return first, second
    raise ValueError("no chord between two vertices splits this polygon")


def pick_kelurahan(features: list[dict[str, Any]]) -> int:
    """The largest kelurahan that borders a kelurahan of another kecamatan."""
    geoms = np.array([f["geometry"] for f in features], dtype=object)
    kec = [f["properties"]["kecamatan_kode"] for f in features]
    tree = shapely.STRtree(geoms)
    for row in np.argsort(-shapely.area(geoms), kind="stable"):
        near = tree.query(geoms[row], predicate="touches")
        if any(kec[k] != kec[row] for k in near):
            return int(row)
    raise ValueError("no kelurahan borders another kecamatan")


def split_features(features: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int, int]:
    """The kelurahan with one split in two: (features, row of the old one, row of the new one).

    The old kelurahan keeps its id and name on one half; the other half gets the next free id
    of its kecamatan and the name "<name> Baru".
    """
    row = pick_kelurahan(features)
    old = features[row]
    first, second = chord_split(old["geometry"])
    kec = old["properties"]["kecamatan_kode"]
    siblings = [
        int(f["properties"]["kode"]) for f in features if f["properties"]["kecamatan_kode"] == kec
    ]
    new_props = {
        "kode": str(max(siblings) + 1),
        "nama": f"{old['properties']['nama']} Baru",
        "kecamatan_kode": kec,
    }
    out = [dict(f) for f in features]
    out[row] = {"properties": dict(old["properties"]), "geometry": first}
    out.insert(row + 1, {"properties": new_props, "geometry": second})
    return out, row, row + 1


def break_features(features: list[dict[str, Any]], row: int) -> list[dict[str, Any]]:
    """Grow the zone at ``row`` into a touching kelurahan of another kecamatan."""
    geoms = np.array([f["geometry"] for f in features], dtype=object)
    kec = features[row]["properties"]["kecamatan_kode"]
    for k in shapely.STRtree(geoms).query(geoms[row], predicate="touches"):
        if features[k]["properties"]["kecamatan_kode"] == kec:
            continue
        border = shapely.intersection(geoms[row], geoms[k])
        corner = shapely.Point(shapely.get_coordinates(border)[0])
        bite = shapely.intersection(geoms[k], corner.buffer(GROW_DEG))
        grown = shapely.union(geoms[row], bite)
        if grown.geom_type == "Polygon":
            out = [dict(f) for f in features]
            out[row] = {"properties": features[row]["properties"], "geometry": grown}
            return out
    raise ValueError("the zone borders no kelurahan of another kecamatan")


def write(features: list[dict[str, Any]], path: Path) -> None:
    """Write features as the demo city writes its layers (one feature per line)."""
    geoms = shapely.orient_polygons(
        np.array([f["geometry"] for f in features], dtype=object), exterior_cw=False
    )
    text = geojson_text(geoms, [f["properties"] for f in features])
    path.write_text(text, encoding="utf-8", newline="\n")


def build(out_dir: Path, demo_dir: Path = DEMO_DIR) -> None:
    """Write both examples into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    features = read_features(demo_dir / "kelurahan.geojson")
    split, old_row, new_row = split_features(features)
    write(split, out_dir / SPLIT_FILE)
    try:
        broken = break_features(split, new_row)
    except ValueError:  # the new half lies inside its kecamatan: grow the old one
        broken = break_features(split, old_row)
    write(broken, out_dir / BROKEN_FILE)


def main(argv: list[str]) -> None:
    """Entry point: ``python -m zones_data.generate_examples [OUTPUT_DIR]``."""
    out_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    build(out_dir)
    print(f"examples written to {out_dir}")


if __name__ == "__main__":
    main(sys.argv)
