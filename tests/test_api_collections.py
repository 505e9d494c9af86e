"""OGC API - Features style access to zone layers and facility sets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.route_input import parse_bbox
from api.settings import AppSettings
from geo_router.errors import InputError

#: A loopback peer: open mode (no key ever) serves only this machine.
LOCAL_PEER = ("127.0.0.1", 50000)


@pytest.fixture(scope="module")
def app_client(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = AppSettings.of(data_dir=tmp_path_factory.mktemp("api_coll"), _env_file=None)
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(app, client=LOCAL_PEER) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        yield client


def test_collections_list_layers_and_facilities(app_client: TestClient, demo_router: Any) -> None:
    r = app_client.get("/v1/collections")
    assert r.status_code == 200
    docs = {c["id"]: c for c in r.json()["collections"]}
    snap = demo_router.snapshot
    assert set(docs) == set(snap.layers) | set(snap.facilities)
    kel = docs["kelurahan"]
    assert kel["itemType"] == "feature"
    assert kel["version"] == snap.layers["kelurahan"].version
    minx, miny, maxx, maxy = kel["extent"]["spatial"]["bbox"][0]
    assert minx < maxx and miny < maxy and -180 <= minx <= 180
    assert {link["rel"] for link in kel["links"]} == {"self", "items"}
    assert docs["hospital"]["kind"] == "facilities"


def test_collection_and_unknown_collection(app_client: TestClient) -> None:
    assert app_client.get("/v1/collections/kecamatan").json()["id"] == "kecamatan"
    r = app_client.get("/v1/collections/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "nope" in r.json()["detail"] and "kelurahan" in r.json()["detail"]


def test_items_paging_links_and_counts(app_client: TestClient, demo_router: Any) -> None:
    total = len(demo_router.snapshot.layers["kelurahan"].ids)
    r = app_client.get("/v1/collections/kelurahan/items", params={"limit": 10, "offset": 10})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    page = r.json()
    assert page["type"] == "FeatureCollection"
    assert page["numberMatched"] == total
    assert page["numberReturned"] == len(page["features"]) == 10
    assert page["timeStamp"].endswith("Z")
    rels = {link["rel"]: link["href"] for link in page["links"]}
    assert "offset=20" in rels["next"] and "offset=0" in rels["prev"]
    feature = page["features"][0]
    assert feature["id"] == feature["properties"]["id"]
    assert feature["properties"]["version"] == demo_router.snapshot.layers["kelurahan"].version
    assert shapely.geometry.shape(feature["geometry"]).is_valid
    last = app_client.get("/v1/collections/kelurahan/items", params={"offset": total - 1}).json()
    assert last["numberReturned"] == 1
    assert "next" not in {link["rel"] for link in last["links"]}


def test_items_bbox_filter(app_client: TestClient, demo_router: Any) -> None:
    b = demo_router.snapshot.coverage_bounds
    small = f"{b[0]},{b[1]},{(b[0] + b[2]) / 2},{(b[1] + b[3]) / 2}"
    everything = app_client.get("/v1/collections/kelurahan/items", params={"limit": 1000}).json()
    part = app_client.get(
        "/v1/collections/kelurahan/items", params={"bbox": small, "limit": 1000}
    ).json()
    assert 0 < part["numberMatched"] < everything["numberMatched"]
    far = app_client.get("/v1/collections/hospital/items", params={"bbox": "0,0,1,1"}).json()
    assert far["numberMatched"] == 0 and far["features"] == []
    near = app_client.get("/v1/collections/hospital/items", params={"bbox": small}).json()
    for f in near["features"]:
        lon, _lat = f["geometry"]["coordinates"]
        assert b[0] <= lon <= (b[0] + b[2]) / 2


@pytest.mark.parametrize(
    "query",
    [
        {"bbox": "1,2,3"},
        {"bbox": "a,b,c,d"},
        {"bbox": "5,0,1,1"},
        {"bbox": "0,-95,1,1"},
        {"bbox": "nan,0,1,1"},
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
    ],
)
def test_items_refuse_bad_queries(app_client: TestClient, query: dict[str, Any]) -> None:
    r = app_client.get("/v1/collections/kelurahan/items", params=query)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert next(iter(query)) in r.json()["detail"]


def test_single_feature(app_client: TestClient, demo_router: Any) -> None:
    zone_id = str(demo_router.snapshot.layers["kecamatan"].ids[0])
    r = app_client.get(f"/v1/collections/kecamatan/items/{zone_id}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    assert r.json()["id"] == zone_id
    fid = str(demo_router.snapshot.facilities["fire_station"].ids[0])
    station = app_client.get(f"/v1/collections/fire_station/items/{fid}").json()
    assert station["geometry"]["type"] == "Point"
    missing = app_client.get("/v1/collections/kecamatan/items/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_parse_bbox_accepts_3d_and_absent() -> None:
    assert parse_bbox(None) is None
    assert parse_bbox("1,2,0,3,4,9") == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(InputError, match="bbox"):
        parse_bbox("1,2,3,4,5")
