"""The zone engine on real NYC data: the city's own labels as ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo_router.city.coords import to_lonlat
from geo_router.city.layers import ZoneLayer, load_layer
from geo_router.city.validation import ids_as_str
from geo_router.city.zone_index import ZoneIndex

pytestmark = [pytest.mark.realdata]


@dataclass(frozen=True)
class Spec:
    """Stand-in for profile.LayerSpec."""

    name: str
    path: Path
    id_field: str
    name_field: str | None = None
    parent: str | None = None
    repair: bool = False


@pytest.fixture(scope="module")
def districts(shared_data: Path) -> ZoneLayer:
    path = shared_data / "nyc_community_districts" / "community_districts_2020.geojson"
    return load_layer(Spec("community_district", path, "boro_cd"), repair=True)


@pytest.fixture(scope="module")
def index(districts: ZoneLayer) -> ZoneIndex:
    return ZoneIndex(districts, tolerance_m=10.0)


@pytest.fixture(scope="module")
def requests_311(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "nyc_311_sample" / "nyc311_sample.csv.gz", low_memory=False)


def candidate_ids(result, ids: np.ndarray, i: int) -> set[str]:  # type: ignore[no-untyped-def]
    return set(ids[result.cand_zone[result.cand_ptr[i] : result.cand_ptr[i + 1]]].tolist())


def test_the_invalid_district_is_repaired(districts: ZoneLayer) -> None:
    assert len(districts) == 71
    assert [r.id for r in districts.repairs] == ["210"]
    assert districts.repairs[0].change_ratio < 1e-6


def test_311_labels_agree(
    index: ZoneIndex, districts: ZoneLayer, requests_311: pd.DataFrame
) -> None:
    rows = requests_311.dropna(subset=["latitude", "longitude", "label_borocd"])
    labels = ids_as_str(rows["label_borocd"])
    res = index.lookup(rows["longitude"].to_numpy(), rows["latitude"].to_numpy())
    primary = np.where(res.primary >= 0, districts.ids[np.maximum(res.primary, 0)], None)
    strict = float(np.mean(primary == labels))
    among = float(
        np.mean([labels[i] in candidate_ids(res, districts.ids, i) for i in range(len(rows))])
    )
    print(
        f"\n311 vs community districts: n={len(rows)} primary={strict:.4%} "
        f"label among candidates (10 m)={among:.4%} outside={np.mean(res.primary < 0):.4%}"
    )
    assert len(rows) == 8151
    assert strict >= 0.988
    assert among >= 0.996


def test_firehouses_agree(index: ZoneIndex, districts: ZoneLayer, shared_data: Path) -> None:
    houses = pd.read_csv(shared_data / "nyc_firehouses" / "FDNY_Firehouse_Listing.csv")
    res = index.lookup(houses["Longitude"].to_numpy(), houses["Latitude"].to_numpy())
    got = districts.ids[res.primary]
    agree = float(np.mean(got == ids_as_str(houses["Community Board"])))
    print(f"\nfirehouses vs community districts: n={len(houses)} primary={agree:.2%}")
    assert (res.primary >= 0).all()
    assert agree == 1.0


def test_state_plane_gives_the_same_zones(index: ZoneIndex, requests_311: pd.DataFrame) -> None:
    rows = requests_311.dropna(
        subset=["latitude", "longitude", "x_coordinate_state_plane", "y_coordinate_state_plane"]
    )
    lon, lat = to_lonlat(
        rows["x_coordinate_state_plane"].to_numpy(),
        rows["y_coordinate_state_plane"].to_numpy(),
        "EPSG:2263",
    )
    from_xy = index.lookup(lon, lat)
    from_lonlat = index.lookup(rows["longitude"].to_numpy(), rows["latitude"].to_numpy())
    same = float(np.mean(from_xy.primary == from_lonlat.primary))
    print(f"\nstate plane (EPSG:2263) vs lon/lat: n={len(rows)} identical primary={same:.4%}")
    assert same >= 0.999


def test_axis_swap_is_detected(index: ZoneIndex, requests_311: pd.DataFrame) -> None:
    rows = requests_311.dropna(subset=["latitude", "longitude"])
    lon, lat = rows["longitude"].to_numpy(), rows["latitude"].to_numpy()
    assert index.covers_any(lon, lat).mean() > 0.99
    assert not index.covers_any(lat, lon).any()
