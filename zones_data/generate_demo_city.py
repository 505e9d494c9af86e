"""Generate the bundled demo city "Kota Contoh" (fictional) into ``zones_data/demo_city/``.

Usage::

    python zones_data/generate_demo_city.py [OUTPUT_DIR]

Everything is derived from fixed seeds, written in a fixed order with coordinates rounded to
6 decimals, so a run reproduces the committed files byte for byte. The geometry is built in
UTM 48S (EPSG:32748) metres and written as RFC 7946 GeoJSON (EPSG:4326, lon/lat, exterior
rings counter-clockwise, no ``crs`` member).

How the zones are made: a Voronoi tessellation of seed points, clipped to an irregular city
outline. Every Voronoi ridge is subdivided and displaced sideways ONCE by a deterministic
noise; the displaced ridges plus the outline are noded and polygonized into faces, and each
face goes to the seed whose original cell it overlaps most. Neighbours are therefore built
from the very same displaced edge and tile the city with no gap and no overlap.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree

UTM = "EPSG:32748"
CENTER_LONLAT = (107.6, -6.9)
CITY_AREA_M2 = 170e6
SEED = 20240611
EDGE_SPACING_M = 20.0  # vertex spacing of displaced edges -> a few hundred vertices per zone
N_KELURAHAN_TARGET = 160
N_KECAMATAN = 30
N_FIRE = 10
N_POLICE = 30
N_HOSPITALS = 12
N_STREETS = 48
DEFAULT_OUT = Path(__file__).resolve().parent / "demo_city"

TO_LONLAT = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
TO_UTM = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)

# fmt: off
KELURAHAN_WORDS = [
    "Sukamaju", "Cibeureum", "Margahayu", "Pasirluyu", "Sekeloa", "Cigadung", "Babakan",
    "Sukaluyu", "Cipedes", "Sindangsari", "Karanganyar", "Cijerah", "Sukarasa", "Cisaranten",
    "Margasari", "Pasirjati", "Cikutra", "Sukagalih", "Cihaurgeulis", "Sadangserang",
    "Cipamokolan", "Mekarwangi", "Sukapura", "Cigending", "Pasirbiru", "Cibangkong", "Kebonwaru",
    "Sukamiskin", "Cimenyan", "Jatisari", "Mekarjaya", "Sindangjaya", "Cisurupan", "Pasanggrahan",
    "Cikawao", "Nyengseret", "Sukawarna", "Cibaduyut", "Margacinta", "Cijawura", "Kebonlega",
    "Situsaeur", "Pagarsih", "Cibuntu", "Warungmuncang", "Sukahaji", "Ciroyom", "Pamoyanan",
    "Cigondewah", "Sukaraja", "Gumuruh", "Maleer", "Binong", "Kacapiring", "Samoja", "Cicadas",
    "Sukapada", "Pasirlayung", "Padasuka", "Cilengkrang", "Sukamulya", "Ciumbuleuit", "Hegarmanah",
    "Ledeng", "Isola", "Gegerkalong", "Sarijadi", "Sukarame", "Cipaganti", "Lebakgede",
    "Lebaksiliwangi", "Tamansari", "Cikawari", "Karangsetra", "Pasteur", "Sukabungah", "Cicendo",
    "Arjuna", "Sukawangi", "Pajajaran", "Sukaresmi", "Rancabolang", "Derwati", "Cisantren",
    "Mekarmulya", "Cijagra", "Turangga", "Lingkar Selatan", "Burangrang", "Malabar", "Cikaso",
    "Sukaasih", "Sekejati", "Kebongedang", "Babakansari", "Sukapakir", "Jamika", "Panjunan",
    "Karasak", "Pelindunghewan", "Ciateul", "Cigereleng", "Ancol", "Pungkur", "Balonggede",
    "Cijaura", "Mengger", "Wates", "Batununggal Indah", "Kujangsari", "Cipadung", "Palasari",
    "Pasirwangi", "Sukamukti", "Jatihandap", "Karyalaksana", "Neglasari", "Sukamenak", "Cisalak",
    "Pananjung",
]
SUFFIXES = [
    "Kaler", "Kidul", "Wetan", "Kulon", "Tengah",
]
KECAMATAN_WORDS = [
    "Sukajadi", "Cidadap", "Arcamanik", "Antapani", "Mandalajati", "Sukasari", "Cibiru",
    "Panyileukan", "Rancasari", "Gedebage", "Buahbatu", "Bojongloa", "Babakan Ciparay",
    "Cibeunying Kidul", "Kiaracondong", "Batununggal", "Lengkong", "Regol", "Astanaanyar", "Andir",
    "Bojongsoang", "Ujungberung", "Cinambo", "Sumurbatu", "Cibeunying", "Kiara Payung",
    "Situ Gede", "Ciparay Hilir", "Cikadut", "Sindanglaya", "Tegallega", "Pasirkoja",
]
STREET_NAMES = [
    "Merdeka", "Sukajadi", "Cihampelas", "Pasirkaliki", "Dipatiukur", "Sudirman", "Ahmad Yani",
    "Diponegoro", "Gatot Subroto", "Pahlawan", "Cut Nyak Dien", "Dewi Sartika",
    "Otto Iskandardinata", "Ir. H. Juanda", "Setiabudi", "Wastukencana", "Supratman", "Cipaganti",
    "Braga", "Asia Afrika", "Lembong", "Tamblong", "Sumatera", "Kalimantan", "Sulawesi", "Ambon",
    "Belitung", "Bengkulu", "Lombok", "Aceh", "Riau", "Banda", "Kebon Jati", "Pajajaran",
    "Siliwangi", "Dago", "Cikapayang", "Surapati", "Pasteur", "Kiaracondong", "Soekarno Hatta",
    "Moh. Toha", "Buah Batu", "Pelajar Pejuang", "Martadinata", "Sultan Agung", "Hasanudin",
    "Cisitu", "Tubagus Ismail", "Ciumbuleuit", "Gegerkalong Hilir", "Sarimanah", "Terusan Jakarta",
    "Kopo", "Imam Bonjol", "Kartini", "Veteran", "Kebon Kawung", "Sukabumi", "Garut",
]
HOSPITAL_NAMES = [
    "RSUD Kota Contoh", "RS Santo Lukas Contoh", "RS Mitra Sehat", "RS Hasanah Medika",
    "RS Bunda Asih", "RSIA Harapan Bunda", "RS Kasih Ibu Contoh", "RS Sartika Medika",
    "RS Bhayangkara Kota Contoh", "RS Cahaya Kasih", "RS Permata Sehat", "RS Al-Ikhlas",
]
# fmt: on

CITY_TOML = """\
name = "Kota Contoh"
phone_region = "ID"

[[layers]]
name = "kelurahan"
path = "kelurahan.geojson"
id_field = "kode"
name_field = "nama"
parent = "kecamatan"

[[layers]]
name = "kecamatan"
path = "kecamatan.geojson"
id_field = "kode"
name_field = "nama"

[[layers]]
name = "fire_district"
path = "fire_districts.geojson"
id_field = "kode"
name_field = "nama"

[[layers]]
name = "police_sector"
path = "police_sectors.geojson"
id_field = "kode"
name_field = "nama"

[[facilities]]
type = "fire_station"
path = "fire_stations.csv"
id_field = "id"
name_field = "name"
lon_field = "lon"
lat_field = "lat"

[[facilities]]
type = "police_post"
path = "police_posts.csv"
id_field = "id"
name_field = "name"
lon_field = "lon"
lat_field = "lat"

[[facilities]]
type = "hospital"
path = "hospitals.csv"
id_field = "id"
name_field = "name"
lon_field = "lon"
lat_field = "lat"

[address_points]
path = "address_points.csv"
street_field = "street"
number_field = "number"
lon_field = "lon"
lat_field = "lat"
kelurahan_field = "kelurahan"
kecamatan_field = "kecamatan"
rt_field = "rt"
rw_field = "rw"

[[categories]]
code = "fire"
name = "Kebakaran (fire)"
agency = "Dinas Pemadam Kebakaran dan Penanggulangan Bencana"
responders = ["fire_station"]
emergency = true

[[categories]]
code = "crime"
name = "Kriminalitas (crime)"
agency = "Kepolisian Sektor"
responders = ["police_post"]
emergency = true

[[categories]]
code = "medical"
name = "Gawat darurat medis (medical)"
agency = "Dinas Kesehatan / Layanan Ambulans"
responders = ["hospital"]
emergency = true

[[categories]]
code = "flooding"
name = "Banjir (flooding)"
agency = "Badan Penanggulangan Bencana Daerah (BPBD)"
responders = ["fire_station"]
emergency = true

[[categories]]
code = "water_pipe"
name = "Pipa air bocor (water pipe)"
agency = "Perumda Air Minum Kota Contoh"
responders = []
emergency = false

[[categories]]
code = "road_damage"
name = "Jalan rusak (road damage)"
agency = "Dinas Sumber Daya Air dan Bina Marga"
responders = []
emergency = false

[[categories]]
code = "waste"
name = "Sampah (waste)"
agency = "Dinas Lingkungan Hidup"
responders = []
emergency = false

[[categories]]
code = "noise"
name = "Kebisingan (noise)"
agency = "Satuan Polisi Pamong Praja (Satpol PP)"
responders = ["police_post"]
emergency = false
"""


# --------------------------------------------------------------------------- geometry (UTM)


def city_outline(rng: np.random.Generator) -> shapely.Polygon:
    """An irregular, star-shaped city outline of exactly ``CITY_AREA_M2`` around the centre."""
    cx, cy = TO_UTM.transform(*CENTER_LONLAT)
    theta = np.linspace(0.0, 2.0 * np.pi, 1600, endpoint=False)
    harmonics = np.arange(2, 40)
    # Low harmonics shape the city, the high ones give it a digitised, ragged edge.
    amp = 0.16 * harmonics.astype(float) ** -1.3 * rng.uniform(0.5, 1.0, harmonics.size)
    phase = rng.uniform(0.0, 2.0 * np.pi, harmonics.size)
    radius = 1.0 + (amp[:, None] * np.cos(harmonics[:, None] * theta + phase[:, None])).sum(0)
    radius += rng.normal(0.0, 0.002, theta.size)
    ring = np.column_stack([radius * np.cos(theta), radius * np.sin(theta)])
    unit_area = shapely.Polygon(ring).area
    ring *= np.sqrt(CITY_AREA_M2 / unit_area)
    return shapely.Polygon(ring + np.array([cx, cy]))


def interior_sample(outline: shapely.Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random points (x, y) strictly inside the outline."""
    minx, miny, maxx, maxy = outline.bounds
    out: list[np.ndarray] = []
    got = 0
    while got < n:
        xy = rng.uniform([minx, miny], [maxx, maxy], size=(2 * n, 2))
        keep = shapely.contains_xy(outline, xy[:, 0], xy[:, 1])
        out.append(xy[keep])
        got += int(keep.sum())
    return np.concatenate(out)[:n]


def jittered_seeds(outline: shapely.Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """About ``n`` jittered-grid seed points inside the outline (away from its edge)."""
    spacing = np.sqrt(outline.area / n)
    minx, miny, maxx, maxy = outline.bounds
    gx, gy = np.meshgrid(np.arange(minx, maxx, spacing), np.arange(miny, maxy, spacing))
    xy = np.column_stack([gx.ravel(), gy.ravel()]) + spacing / 2
    xy += rng.uniform(-0.35 * spacing, 0.35 * spacing, xy.shape)
    inner = outline.buffer(-0.25 * spacing)
    return xy[shapely.contains_xy(inner, xy[:, 0], xy[:, 1])]


def spread_points(outline: shapely.Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` well-spread points inside the outline (k-means centres snapped inside)."""
    sample = interior_sample(outline, 6000, rng)
    centres, _ = kmeans2(sample, n, seed=rng, minit="++")
    # A centre of a concave cluster may fall outside: snap it to its nearest sample point.
    _, nearest = cKDTree(sample).query(centres)
    return sample[nearest]


def displace_edge(edge: shapely.LineString, rng: np.random.Generator) -> np.ndarray:
    """Subdivide a straight edge and push it sideways by fractal noise, ends fixed."""
    a, b = np.asarray(edge.coords)[[0, -1]]
    vec = b - a
    length = float(np.hypot(*vec))
    n = max(2, int(np.ceil(length / EDGE_SPACING_M)))
    t = np.linspace(0.0, 1.0, n + 1)
    freqs = np.array([1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0])
    amps = 0.05 * min(length, 1500.0) * freqs**-1.4 * rng.normal(0.0, 1.0, freqs.size)
    phases = rng.uniform(0.0, 2.0 * np.pi, freqs.size)
    wave = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(0)
    wave += rng.normal(0.0, 1.5, t.size)  # digitising jitter
    # sin^2 keeps both ends in place and leaves each node along the ridge's own direction,
    # so displaced edges meeting at a node rarely cross.
    offset = np.clip(wave, -0.15 * length, 0.15 * length) * np.sin(np.pi * t) ** 2
    normal = np.array([-vec[1], vec[0]]) / length
    out = a + t[:, None] * vec + offset[:, None] * normal
    out[[0, -1]] = a, b  # exactly the shared nodes, or neighbouring ridges would not meet
    return out


def noisy_partition(
    outline: shapely.Polygon, seeds: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Tile the outline into one polygon per seed along displaced Voronoi ridges."""
    points = shapely.multipoints(seeds)
    envelope = outline.buffer(5000.0).envelope
    cells = shapely.get_parts(shapely.voronoi_polygons(points, extend_to=envelope))
    # voronoi_polygons does not keep input order: pair each cell with the seed inside it.
    cell_of_seed = shapely.STRtree(cells).query(shapely.points(seeds), predicate="within")
    cells = cells[cell_of_seed[1][np.argsort(cell_of_seed[0])]]
    cells = shapely.intersection(cells, outline)

    ridges = shapely.get_parts(
        shapely.voronoi_polygons(points, extend_to=envelope, only_edges=True)
    )
    # Clip to a margin around the city, not to the outline itself: an end computed exactly on
    # the outline would miss it by a rounding error and dangle instead of closing a face.
    ridges = shapely.get_parts(shapely.intersection(ridges, outline.buffer(300.0)))
    ridges = ridges[shapely.get_type_id(ridges) == 1]
    ridges = ridges[shapely.length(ridges) > 1.0]
    # Canonical ridge order and direction, so the noise does not depend on GEOS internals.
    coords = np.array([np.asarray(r.coords)[[0, -1]].ravel() for r in ridges])
    flip = (coords[:, 0] > coords[:, 2]) | (
        (coords[:, 0] == coords[:, 2]) & (coords[:, 1] > coords[:, 3])
    )
    coords[flip] = coords[flip][:, [2, 3, 0, 1]]
    order = np.lexsort((coords[:, 3], coords[:, 2], coords[:, 1], coords[:, 0]))
    noisy = [displace_edge(shapely.LineString(coords[i].reshape(2, 2)), rng) for i in order]
    linework = shapely.union_all(np.array([*map(shapely.LineString, noisy), outline.exterior]))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(linework)))
    faces = faces[shapely.contains(outline, shapely.point_on_surface(faces))]
    label = assign_faces(faces, cells)
    return dissolve_single_parts(faces, label, len(seeds))


def assign_faces(faces: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Label each face with the cell it overlaps most."""
    face_i, cell_i = shapely.STRtree(cells).query(faces, predicate="intersects")
    area = shapely.area(shapely.intersection(faces[face_i], cells[cell_i]))
    order = np.lexsort((-area, face_i))
    first = np.unique(face_i[order], return_index=True)[1]
    label = np.full(len(faces), -1)
    label[face_i[order][first]] = cell_i[order][first]
    return label


def dissolve_single_parts(faces: np.ndarray, label: np.ndarray, n: int) -> np.ndarray:
    """Union faces per label, handing stray parts to the neighbour sharing most border."""
    tree = shapely.STRtree(faces)
    for _ in range(20):
        zones = np.array([shapely.coverage_union_all(faces[label == i]) for i in range(n)])
        multi = np.flatnonzero(shapely.get_num_geometries(zones) > 1)
        if multi.size == 0:
            return zones
        for i in multi:
            parts = shapely.get_parts(zones[i])
            for part in parts[np.argsort(-shapely.area(parts))][1:]:
                mine = np.flatnonzero(label == i)
                inside = mine[shapely.contains(part, shapely.point_on_surface(faces[mine]))]
                near = tree.query(part, predicate="intersects")
                near = near[label[near] != i]
                shared = shapely.length(shapely.intersection(faces[near], part))
                label[inside] = label[near[np.argmax(shared)]]
    raise RuntimeError("could not make every zone a single polygon")


# --------------------------------------------------------------------------- output helpers


def to_lonlat_rounded(geoms: np.ndarray) -> np.ndarray:
    """Reproject UTM geometries to lon/lat, round to 6 decimals, orient for RFC 7946."""

    def project(xy: np.ndarray) -> np.ndarray:
        lon, lat = TO_LONLAT.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lon, lat]), 6)

    out = shapely.remove_repeated_points(shapely.transform(geoms, project), 0.0)
    return shapely.orient_polygons(out, exterior_cw=False)


def geojson_text(geoms: np.ndarray, props: list[dict[str, str]]) -> str:
    """A FeatureCollection, one feature per line, coordinates as written by ``round``."""
    lines = []
    for geom, prop in zip(geoms, props, strict=True):
        feature = {
            "type": "Feature",
            "properties": prop,
            "geometry": json.loads(shapely.to_geojson(geom)),
        }
        lines.append(json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
    return '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"


def csv_text(frame: pd.DataFrame) -> str:
    """CSV with ``\\n`` line ends and 6-decimal lon/lat."""
    buf = io.StringIO()
    frame.to_csv(
        buf, index=False, lineterminator="\n", float_format="%.6f", quoting=csv.QUOTE_MINIMAL
    )
    return buf.getvalue()


def unique_names(words: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct names drawn from ``words``, disambiguated with Sundanese suffixes."""
    names: list[str] = []
    seen: set[str] = set()
    for i in rng.permutation(np.arange(n) % len(words)):
        base = words[i]
        candidates = [base] + [f"{base} {s}" for s in rng.permutation(SUFFIXES)]
        name = next(c for c in candidates if c not in seen)
        seen.add(name)
        names.append(name)
    return names


# --------------------------------------------------------------------------- the city


def group_kecamatan(kel: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Contiguous groups of 3-8 kelurahan: balanced region growing from spread seeds."""
    left, right = shapely.STRtree(kel).query(kel, predicate="touches")
    shared = shapely.length(shapely.intersection(kel[left], kel[right]))
    keep = shared > 1.0  # share an edge, not only a corner
    neighbours = [set() for _ in kel]
    for a, b in zip(left[keep], right[keep], strict=True):
        neighbours[a].add(int(b))
    centroids = shapely.get_coordinates(shapely.centroid(kel))
    for _ in range(50):
        centres, _ = kmeans2(centroids, n_groups, seed=rng, minit="++")
        _, start = cKDTree(centroids).query(centres)
        if len(set(start.tolist())) < n_groups:
            continue
        group = np.full(len(kel), -1)
        group[start] = np.arange(n_groups)
        sizes = np.ones(n_groups, int)
        while (group < 0).any():
            grown = False
            for g in np.argsort(sizes, kind="stable"):
                if sizes[g] >= 8:
                    continue
                frontier = sorted(
                    {b for a in np.flatnonzero(group == g) for b in neighbours[a] if group[b] < 0}
                )
                if frontier:
                    # Grow towards the nearest free neighbour to keep groups compact.
                    home = centroids[group == g].mean(0)
                    pick = frontier[int(np.argmin(np.hypot(*(centroids[frontier] - home).T)))]
                    group[pick] = g
                    sizes[g] += 1
                    grown = True
                    break
            if not grown:
                break
        if (group >= 0).all() and sizes.min() >= 3 and sizes.max() <= 8:
            return group
    raise RuntimeError("could not group kelurahan into kecamatan")


def make_streets(outline: shapely.Polygon, rng: np.random.Generator) -> np.ndarray:
    """Gently curving street centre lines inside the city."""
    starts = spread_points(outline, N_STREETS, rng)
    lines = []
    for x0, y0 in starts:
        steps = int(rng.uniform(1800, 5200) / 50)
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.06, steps))
        path = np.column_stack([np.cos(heading), np.sin(heading)]) * 50.0
        # Walk both ways from the start point so the start ends up mid-street.
        half = steps // 2
        xy = np.cumsum(path, axis=0)
        xy = xy - xy[half] + [x0, y0]
        pieces = shapely.get_parts(shapely.intersection(shapely.LineString(xy), outline))
        pieces = pieces[shapely.get_type_id(pieces) == 1]
        lines.append(pieces[np.argmax(shapely.length(pieces))])
    return np.array(lines)


def address_points(streets: np.ndarray, names: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Houses along every street: numbers increase along it, odd left and even right."""
    frames = []
    for line, name in zip(streets, names, strict=True):
        spacing = rng.uniform(50.0, 90.0)
        along = np.arange(spacing / 2, line.length - 1.0, spacing)
        ahead = shapely.get_coordinates(shapely.line_interpolate_point(line, along + 1.0))
        here = shapely.get_coordinates(shapely.line_interpolate_point(line, along))
        tangent = (ahead - here) / np.hypot(*(ahead - here).T)[:, None]
        left = np.column_stack([-tangent[:, 1], tangent[:, 0]])
        setback = rng.uniform(8.0, 16.0, along.size)
        odd = here + left * setback[:, None]
        even = here - left * setback[:, None] + tangent * spacing / 2
        k = np.arange(along.size)
        frames.append(
            pd.DataFrame(
                {
                    "street": f"Jalan {name}",
                    "number": np.concatenate([2 * k + 1, 2 * k + 2]),
                    "x": np.concatenate([odd[:, 0], even[:, 0]]),
                    "y": np.concatenate([odd[:, 1], even[:, 1]]),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def rt_rw(x: np.ndarray, y: np.ndarray) -> tuple[list[str], list[str]]:
    """RW from a 400 m grid cell and RT from a 120 m one: neighbours share them."""
    rw = 1 + (np.floor(x / 400).astype(int) * 7 + np.floor(y / 400).astype(int) * 3) % 12
    rt = 1 + (np.floor(x / 120).astype(int) * 5 + np.floor(y / 120).astype(int) * 11) % 15
    return [f"{v:02d}" for v in rw], [f"{v:02d}" for v in rt]


def containing(zones: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Row of the zone strictly containing each point, -1 for none (or on an edge)."""
    pts, zone = shapely.STRtree(zones).query(shapely.points(lon, lat), predicate="within")
    out = np.full(len(lon), -1)
    counts = np.bincount(pts, minlength=len(lon))
    single = counts[pts] == 1
    out[pts[single]] = zone[single]
    return out


def facility_frame(
    prefix: str, xy: np.ndarray, names: list[str], addresses: pd.DataFrame
) -> pd.DataFrame:
    """Facilities sorted north to south, with the nearest house as their address."""
    lon, lat = TO_LONLAT.transform(xy[:, 0], xy[:, 1])
    lon, lat = np.round(lon, 6), np.round(lat, 6)
    ax, ay = TO_UTM.transform(addresses["lon"].to_numpy(), addresses["lat"].to_numpy())
    _, near = cKDTree(np.column_stack([ax, ay])).query(xy)
    rows = addresses.iloc[near]
    address = [
        f"{r.street} No. {r.number}, Kel. {r.kelurahan}, Kec. {r.kecamatan}"
        for r in rows.itertuples()
    ]
    width = max(2, len(str(len(xy))))
    return pd.DataFrame(
        {
            "id": [f"{prefix}-{i + 1:0{width}d}" for i in range(len(xy))],
            "name": names,
            "lon": lon,
            "lat": lat,
            "address": address,
        }
    )


def north_to_south(xy: np.ndarray) -> np.ndarray:
    """Sort points north to south, then west to east (gives stable, readable numbering)."""
    return xy[np.lexsort((np.round(xy[:, 0]), -np.round(xy[:, 1])))]


def build(out_dir: Path) -> None:
    """Generate every demo city file into ``out_dir``."""
    rng = np.random.default_rng(SEED)
    outline = city_outline(rng)

    # Admin layers: kelurahan, grouped into kecamatan.
    kel_utm = noisy_partition(outline, jittered_seeds(outline, N_KELURAHAN_TARGET, rng), rng)
    group = group_kecamatan(kel_utm, N_KECAMATAN, rng)
    # Number kecamatan north to south; kelurahan likewise within their kecamatan.
    cent = shapely.get_coordinates(shapely.centroid(kel_utm))
    kec_cent = np.array([cent[group == g].mean(0) for g in range(N_KECAMATAN)])
    kec_rank = np.empty(N_KECAMATAN, int)
    kec_rank[np.lexsort((np.round(kec_cent[:, 0]), -np.round(kec_cent[:, 1])))] = np.arange(
        N_KECAMATAN
    )
    kec_no = kec_rank[group] + 1
    kel_order = np.lexsort((np.round(cent[:, 0]), -np.round(cent[:, 1]), kec_no))
    kel_utm, kec_no = kel_utm[kel_order], kec_no[kel_order]
    kel_no = np.concatenate(
        [np.arange(1, (kec_no == k).sum() + 1) for k in range(1, N_KECAMATAN + 1)]
    )
    kel_geom = to_lonlat_rounded(kel_utm)
    kel_names = unique_names(KELURAHAN_WORDS, len(kel_geom), rng)
    kec_names = list(rng.permutation(KECAMATAN_WORDS)[:N_KECAMATAN])
    kec_kode = [f"3299{k:02d}" for k in range(1, N_KECAMATAN + 1)]
    kel_kode = [f"3299{k:02d}{j:04d}" for k, j in zip(kec_no, kel_no, strict=True)]
    kec_geom = shapely.orient_polygons(
        np.array(
            [shapely.coverage_union_all(kel_geom[kec_no == k]) for k in range(1, N_KECAMATAN + 1)]
        ),
        exterior_cw=False,
    )

    # Service layers: Voronoi around the stations / posts, unrelated to the admin lines.
    fire_xy = north_to_south(spread_points(outline, N_FIRE, rng))
    police_xy = north_to_south(spread_points(outline, N_POLICE, rng))
    hospital_xy = north_to_south(spread_points(outline, N_HOSPITALS, rng))
    fire_geom = to_lonlat_rounded(noisy_partition(outline, fire_xy, rng))
    police_geom = to_lonlat_rounded(noisy_partition(outline, police_xy, rng))

    # Streets and houses, labelled by the kelurahan that really contains them.
    # The first five names (used in docs and examples) always exist; the rest are drawn.
    drawn = rng.permutation(STREET_NAMES[5:])[: N_STREETS - 5]
    street_names = [*STREET_NAMES[:5], *drawn]
    houses = address_points(make_streets(outline, rng), street_names, rng)
    lon, lat = TO_LONLAT.transform(houses["x"].to_numpy(), houses["y"].to_numpy())
    houses["lon"], houses["lat"] = np.round(lon, 6), np.round(lat, 6)
    zone = containing(kel_geom, houses["lon"].to_numpy(), houses["lat"].to_numpy())
    houses = houses[zone >= 0].copy()
    zone = zone[zone >= 0]
    houses["kelurahan"] = np.array(kel_names)[zone]
    houses["kecamatan"] = np.array(kec_names)[kec_no[zone] - 1]
    houses["rw"], houses["rt"] = rt_rw(houses["x"].to_numpy(), houses["y"].to_numpy())
    houses = houses.sort_values(["street", "number"], kind="stable").reset_index(drop=True)
    houses["id"] = [f"AP-{i + 1:05d}" for i in range(len(houses))]
    houses["number"] = houses["number"].astype(str)
    houses = houses[["id", "street", "number", "rt", "rw", "kelurahan", "kecamatan", "lon", "lat"]]

    def zone_name(xy: np.ndarray, fmt: str) -> list[str]:
        lo, la = TO_LONLAT.transform(xy[:, 0], xy[:, 1])
        at = containing(kel_geom, np.round(lo, 6), np.round(la, 6))
        names: list[str] = []
        for k in at:
            base = fmt.format(kel_names[k])
            names.append(base if base not in names else f"{base} {len(names) + 1}")
        return names

    fire = facility_frame("FS", fire_xy, zone_name(fire_xy, "Pos Damkar {}"), houses)
    police = facility_frame("PP", police_xy, zone_name(police_xy, "Polsek {}"), houses)
    hospitals = facility_frame("RS", hospital_xy, list(HOSPITAL_NAMES), houses)
    police_sector_names = [f"Polsek Sektor {n.removeprefix('Polsek ')}" for n in police["name"]]

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "kelurahan.geojson": geojson_text(
            kel_geom,
            [
                {"kode": k, "nama": n, "kecamatan_kode": f"3299{c:02d}"}
                for k, n, c in zip(kel_kode, kel_names, kec_no, strict=True)
            ],
        ),
        "kecamatan.geojson": geojson_text(
            kec_geom,
            [{"kode": k, "nama": n} for k, n in zip(kec_kode, kec_names, strict=True)],
        ),
        "fire_districts.geojson": geojson_text(
            fire_geom,
            [
                {"kode": f"DAMKAR-{i:02d}", "nama": f"Wilayah Damkar {i}"}
                for i in range(1, N_FIRE + 1)
            ],
        ),
        "police_sectors.geojson": geojson_text(
            police_geom,
            [{"kode": f"POLSEK-{i + 1:02d}", "nama": n} for i, n in enumerate(police_sector_names)],
        ),
        "fire_stations.csv": csv_text(fire),
        "police_posts.csv": csv_text(police),
        "hospitals.csv": csv_text(hospitals),
        "address_points.csv": csv_text(houses),
        "city.toml": CITY_TOML,
    }
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8", newline="\n")


def main(argv: list[str]) -> None:
    """Entry point: ``generate_demo_city.py [OUTPUT_DIR]``."""
    out_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    build(out_dir)
    print(f"demo city written to {out_dir}")


if __name__ == "__main__":
    main(sys.argv)
