"""GET/POST /v1/route and POST /v1/route/batch on the demo city; GET is one lean route."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pyproj
import pytest
import shapely
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.routers import route as route_module
from api.routers.route import LeanRoute, point_route
from api.settings import AppSettings
from geo_router.encoding.batch import encode_batch_answer, encode_batch_rows
from geo_router.encoding.json import dumps, route_answer_dict

#: A loopback peer: open mode (no key ever) serves only this machine.
LOCAL_PEER = ("127.0.0.1", 50000)


@pytest.fixture(scope="module")
def app_client(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings_ = AppSettings.of(data_dir=tmp_path_factory.mktemp("api_route"), _env_file=None)
    app = create_app(settings_, city_loader=lambda s: (demo_router, None))
    with TestClient(app, client=LOCAL_PEER) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        yield client


@pytest.fixture(scope="module")
def inside_points(demo_router: Any) -> list[tuple[str, float, float]]:
    """(kelurahan id, lon, lat) at the representative point of a few kelurahan."""
    layer = demo_router.snapshot.layers["kelurahan"]
    pts = shapely.point_on_surface(np.asarray(layer.geometries[:5]))
    return [(str(i), float(p.x), float(p.y)) for i, p in zip(layer.ids[:5], pts, strict=True)]


def test_get_route_answers_zones_responders_and_request_id(
    app_client: TestClient, inside_points: list[tuple[str, float, float]]
) -> None:
    zone_id, lon, lat = inside_points[0]
    r = app_client.get("/v1/route", params={"lon": lon, "lat": lat, "k": 2})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["zones"]["kelurahan"]["zone_id"] == zone_id
    assert body["zones"]["kelurahan"]["status"] in {"inside", "near_boundary"}
    assert set(body["zones"]) == {"kelurahan", "kecamatan", "fire_district", "police_sector"}
    for layer in body["zones"].values():
        assert layer["version"]
        assert layer["candidates"][0]["distance_m"] == 0.0
    for responders in body["responders"].values():
        assert len(responders) == 2
        assert responders[0]["distance_m"] <= responders[1]["distance_m"]
        assert 0 <= responders[0]["bearing_deg"] <= 360
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["warnings"] == []


def test_get_route_with_category_ranks_its_responders(
    app_client: TestClient, inside_points: list[tuple[str, float, float]]
) -> None:
    _, lon, lat = inside_points[1]
    body = app_client.get("/v1/route", params={"lon": lon, "lat": lat, "category": "fire"}).json()
    assert body["category"]["code"] == "fire"
    assert body["category"]["agency"]
    assert set(body["responders"]) == {"fire_station"}


def test_get_route_outside_and_axis_swap_warnings(
    app_client: TestClient, inside_points: list[tuple[str, float, float]]
) -> None:
    _, lon, lat = inside_points[0]
    far = app_client.get("/v1/route", params={"lon": 0.0, "lat": 0.0}).json()
    assert "outside_coverage" in far["warnings"]
    assert all(z["status"] == "outside_coverage" for z in far["zones"].values())
    # lat, lon given the wrong way round but both in range: (-6.9, 107.6) is valid lon/lat
    r = app_client.get("/v1/route", params={"lon": lat, "lat": lon})
    assert r.status_code == 422  # lat 107 is out of range: refused, with the swap hint
    assert "swapped" in r.json()["detail"] or "order" in r.json()["detail"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"lon": "nan", "lat": -6.9}, "lon"),
        ({"lon": 107.6, "lat": "inf"}, "lat"),
        ({"lon": 181, "lat": -6.9}, "lon"),
        ({"lon": 107.6, "lat": -91}, "lat"),
        ({"lon": "abc", "lat": -6.9}, "lon"),
        ({"lat": -6.9}, "lon"),
        ({"lon": 107.6, "lat": -6.9, "k": 0}, "k"),
        ({"lon": 107.6, "lat": -6.9, "k": 21}, "k"),
        ({"lon": 107.6, "lat": -6.9, "k": "two"}, "k"),
    ],
)
def test_get_route_refuses_bad_parameters(
    app_client: TestClient, query: dict[str, Any], field: str
) -> None:
    r = app_client.get("/v1/route", params=query)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 422
    assert field in problem["detail"]
    assert problem["errors"][0]["field"] == field


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lon=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-180, 180)),
    lat=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-90, 90)),
)
def test_get_route_never_fails_with_a_server_error(
    app_client: TestClient, lon: float, lat: float
) -> None:
    r = app_client.get("/v1/route", params={"lon": repr(lon), "lat": repr(lat)})
    valid = np.isfinite(lon) and np.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90
    assert r.status_code == (200 if valid else 422), r.text


def test_post_route_body_shapes_agree(
    app_client: TestClient, inside_points: list[tuple[str, float, float]]
) -> None:
    zone_id, lon, lat = inside_points[2]
    utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32748", always_xy=True)
    x, y = utm.transform(lon, lat)
    point = {"type": "Point", "coordinates": [lon, lat]}
    bodies = [
        {"lon": lon, "lat": lat},
        point,
        {"type": "Feature", "geometry": point, "properties": {}},
        {"x": x, "y": y, "crs": "EPSG:32748"},
    ]
    for body in bodies:
        r = app_client.post("/v1/route", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["zones"]["kelurahan"]["zone_id"] == zone_id, body
    with_k = app_client.post(
        "/v1/route", json={"lon": lon, "lat": lat, "k": 1, "category": "medical"}
    ).json()
    assert set(with_k["responders"]) == {"hospital"}
    assert len(with_k["responders"]["hospital"]) == 1


def test_post_route_circle_and_polygon_list_overlaps(
    app_client: TestClient, inside_points: list[tuple[str, float, float]]
) -> None:
    _, lon, lat = inside_points[3]
    r = app_client.post("/v1/route", json={"lon": lon, "lat": lat, "radius_m": 800})
    assert r.status_code == 200, r.text
    body = r.json()
    shares = body["overlaps"]["kelurahan"]
    assert shares and abs(sum(s["share"] for s in shares) - 1.0) < 0.02
    assert shares == sorted(shares, key=lambda s: -s["share"])
    assert body["zones"]["kelurahan"]["zone_id"] == shares[0]["zone_id"]  # greatest overlap
    d = 0.002
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    polygon = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    feature = {"type": "Feature", "geometry": polygon, "properties": {"category": "fire"}}
    r = app_client.post("/v1/route", json=feature)
    assert r.status_code == 200, r.text
    assert r.json()["overlaps"]["kecamatan"]
    assert r.json()["category"]["code"] == "fire"


def test_batch_matches_single_routes_in_input_order(
    app_client: TestClient, demo_router: Any, inside_points: list[tuple[str, float, float]]
) -> None:
    points = [[lon, lat] for _, lon, lat in inside_points]
    points.insert(2, [200.0, 0.0])  # a bad row keeps its place
    r = app_client.post("/v1/route/batch", json={"points": points, "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(points) == len(body["results"])
    assert "out of range" in body["results"][2]["error"]
    good = [res for i, res in enumerate(body["results"]) if i != 2]
    for (zone_id, lon, lat), res in zip(inside_points, good, strict=True):
        single = demo_router.route(lon, lat, k=2)
        for layer, match in single.zones.items():
            assert res["zones"][layer]["id"] == match.zone_id
            assert res["zones"][layer]["status"] == str(match.status)
            assert [c["id"] for c in res["zones"][layer]["candidates"]] == [
                c.zone_id for c in match.candidates
            ]
        for ftype, responders in single.responders.items():
            got = res["responders"][ftype]
            assert [g["id"] for g in got] == [x.facility_id for x in responders]
            assert got[0]["distance_m"] == pytest.approx(responders[0].distance_m, abs=0.06)
        assert res["zones"]["kelurahan"]["id"] == zone_id


def test_batch_feature_collection_and_category(
    app_client: TestClient, inside_points: list[tuple[str, float, float]]
) -> None:
    feats = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}}
        for _, lon, lat in inside_points
    ]
    feats.append({"type": "Feature", "geometry": {"type": "LineString", "coordinates": []}})
    r = app_client.post(
        "/v1/route/batch",
        json={"type": "FeatureCollection", "features": feats, "category": "crime"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["category"]["code"] == "crime"
    assert set(body["results"][0]["responders"]) == {"police_post"}
    assert "features[5]" in body["results"][-1]["error"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"points": [[1, 2]] * 10_001}, 413, "limit of 10000"),
        ({"points": "nope"}, 422, "points"),
        ({"nothing": 1}, 422, "FeatureCollection"),
        ({"points": [[107.6, -6.9]], "k": 99}, 422, "k must be"),
        ({"points": [[107.6, -6.9]], "category": "nope"}, 422, "nope"),
        ([1, 2], 422, "JSON object"),
    ],
)
def test_batch_refusals(app_client: TestClient, body: Any, status: int, needle: str) -> None:
    r = app_client.post("/v1/route/batch", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"]


def test_batch_empty_list_answers_no_results(app_client: TestClient) -> None:
    r = app_client.post("/v1/route/batch", json={"points": []})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == []


@pytest.mark.slow
def test_batch_of_10000_points_throughput(app_client: TestClient, demo_router: Any) -> None:
    """Times a full 10,000-point POST end to end (printed; see the report for numbers)."""
    b = demo_router.snapshot.coverage_bounds
    rng = np.random.default_rng(7)
    pts = np.column_stack([rng.uniform(b[0], b[2], 10_000), rng.uniform(b[1], b[3], 10_000)])
    payload = orjson.dumps({"points": pts, "k": 1}, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = {"content-type": "application/json"}
    app_client.post("/v1/route/batch", content=payload, headers=headers)  # warm caches
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        r = app_client.post("/v1/route/batch", content=payload, headers=headers)
        best = min(best, time.perf_counter() - t0)
        assert r.status_code == 200
    results = orjson.loads(r.content)["results"]
    assert len(results) == 10_000
    print(f"\nbatch 10,000 points: {best * 1e3:.0f} ms -> {10_000 / best:,.0f} points/s")


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.text(alphabet="lonatk%+=2Eé ", max_size=6),
            st.text(alphabet="0123456789.-+%2Be é&", max_size=8),
        ),
        max_size=5,
    )
)
def test_parse_query_equals_starlette(pairs: list[tuple[str, str]]) -> None:
    from starlette.datastructures import QueryParams

    from api.route_input import parse_query

    raw = "&".join(f"{name}={value}" for name, value in pairs).encode()
    assert parse_query(raw) == dict(QueryParams(raw))


def test_batch_with_more_responders_than_facilities(
    app_client: TestClient, demo_router: Any, inside_points: list[tuple[str, float, float]]
) -> None:
    """k beyond a facility type's size: that list is shorter; bad rows keep their place."""
    points = [[lon, lat] for _, lon, lat in inside_points[:2]] + [[None, 1.0], [0.0, 0.0]]
    r = app_client.post("/v1/route/batch", json={"points": points, "k": 20})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    sizes = {t: len(fs.ids) for t, fs in demo_router.snapshot.facilities.items()}
    for (_, lon, lat), res in zip(inside_points[:2], results[:2], strict=False):
        single = demo_router.route(lon, lat, k=20)
        for ftype, got in res["responders"].items():
            assert len(got) == min(20, sizes[ftype])
            assert [g["id"] for g in got] == [x.facility_id for x in single.responders[ftype]]
    assert "points[2]" in results[2]["error"]
    assert results[3]["warnings"] == ["outside_coverage"]
    assert all(z["status"] == "outside_coverage" for z in results[3]["zones"].values())


@pytest.mark.parametrize("category", [None, "fire"])
def test_batch_encoded_while_routing_equals_encoded_after(
    demo_router: Any, monkeypatch: pytest.MonkeyPatch, category: str | None
) -> None:
    """Zones encoded while the helper thread ranks facilities: the serial answer's bytes."""
    import geo_router.city.router as router_module

    b = demo_router.snapshot.coverage_bounds
    rng = np.random.default_rng(11)
    n = 5000
    lon = rng.uniform(b[0] - 0.01, b[2] + 0.01, n)
    lat = rng.uniform(b[1] - 0.01, b[3] + 0.01, n)
    lon[::97] = np.nan  # unusable rows keep their place
    errors: list[str | None] = [None] * n
    monkeypatch.setattr(router_module, "_CPUS", 2)
    monkeypatch.setattr(router_module, "PARALLEL_MIN_POINTS", 1)
    threaded = encode_batch_answer(
        demo_router, lon, lat, k=2, category=category, row_errors=errors, request_id="rid"
    )
    monkeypatch.setattr(router_module, "PARALLEL_MIN_POINTS", 10**9)
    serial = encode_batch_answer(
        demo_router, lon, lat, k=2, category=category, row_errors=errors, request_id="rid"
    )
    assert threaded == serial
    bulk = demo_router.route_many(lon, lat, k=2)
    kinds = demo_router.category(category).responders if category else list(bulk.nearest)
    plain = encode_batch_rows(
        bulk,
        dict(demo_router.snapshot.layers),
        {t: demo_router.snapshot.facilities[t] for t in kinds},
    )
    assert serial.endswith(b'"results":[' + plain + b"]}")


def test_batch_booleans_are_not_coordinates(app_client: TestClient) -> None:
    """JSON true/false would pass for 1/0 in Python and numpy: each such row is an error."""
    points = [[True, -6.9], [107.6, -6.9], [107.6, False], [107.6, -6.9, True]]
    r = app_client.post("/v1/route/batch", json={"points": points})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert "points[0]" in results[0]["error"]
    assert "error" not in results[1]
    assert "points[2]" in results[2]["error"]
    assert "error" not in results[3]  # an altitude is not checked, as GeoJSON allows any


# --- GET /v1/route: one implementation, a lean route inside the app's routing --------------

POINT = {"lon": 107.6, "lat": -6.9}


def test_one_route_inside_the_app_and_nothing_in_front(app_client: TestClient) -> None:
    app = app_client.app
    assert type(app).__call__ is FastAPI.__call__  # no ASGI layer answers before the stack
    assert app.router.routes[0] is point_route
    assert isinstance(point_route, LeanRoute)
    gets = [
        r
        for r in app.router.routes
        if getattr(r, "path", None) == "/v1/route" and "GET" in getattr(r, "methods", ())
    ]
    assert gets == [point_route]
    assert app.openapi()["paths"]["/v1/route"]["get"]["operationId"] == "route_point"


def test_answer_is_the_general_encoders_bytes(app_client: TestClient, demo_router: Any) -> None:
    headers = {"X-Request-ID": "fixed-id-1"}
    for params in (POINT, {**POINT, "k": 1, "category": "fire"}, {"lon": "1", "lat": "1"}):
        r = app_client.get("/v1/route", params=params, headers=headers)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-request-id"] == "fixed-id-1"
        lon, lat = float(params["lon"]), float(params["lat"])
        category = params.get("category")
        result = demo_router.route(lon, lat, category=category, k=int(params.get("k", 3)))
        assert r.content == dumps(route_answer_dict(result, "fixed-id-1"))


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"lon": "nan", "lat": "-6.9"}, 422),
        ({"lat": "-6.9"}, 422),
        ({"lon": "107.6", "lat": "-6.9", "category": "nope"}, 422),
        ({"lon": "107.6", "lat": "-6.9", "k": "0"}, 422),
    ],
)
def test_errors_are_problem_json_from_the_one_error_table(
    app_client: TestClient, params: dict[str, str], status: int
) -> None:
    r = app_client.get("/v1/route", params=params)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"] == r.json()["request_id"]


def test_other_methods_get_405_and_post_its_own_route(app_client: TestClient) -> None:
    r = app_client.put("/v1/route", params=POINT)
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
    assert app_client.post("/v1/route", json=POINT).status_code == 200


def test_answers_are_counted_in_metrics(app_client: TestClient) -> None:
    app_client.get("/v1/route", params=POINT)
    app_client.get("/v1/route", params={"lat": "1"})
    text = app_client.get("/metrics").text
    lines = [ln for ln in text.splitlines() if 'route="/v1/route"' in ln and "_total" in ln]
    assert any('status="200"' in ln and 'method="GET"' in ln for ln in lines), lines
    assert any('status="422"' in ln and 'method="GET"' in ln for ln in lines), lines


def test_a_lean_route_refuses_an_endpoint_with_parameters() -> None:
    async def endpoint(request: Request, k: int = 3) -> None:
        """Has a query parameter a LeanRoute would never fill."""

    with pytest.raises(TypeError, match="only the Request"):
        LeanRoute("/x", endpoint, methods=["GET"])


@pytest.mark.parametrize("text", ["1_07", "nan", "inf", "\u0661\u0660\u0667"])
def test_query_coordinates_take_only_decimal_numbers(app_client: TestClient, text: str) -> None:
    r = app_client.get("/v1/route", params={"lon": text, "lat": "-6.9"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "lon"


def _ring(lon: float, lat: float, n: int, radius: float = 0.002) -> list[list[float]]:
    """A closed counter-clockwise ring of ``n`` vertices around (lon, lat)."""
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    ring = [[lon + radius * float(np.cos(a)), lat + radius * float(np.sin(a))] for a in angles]
    return [*ring, ring[0]]


def test_a_big_polygon_is_parsed_off_the_event_loop(
    app_client: TestClient, inside_points: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 10, Low: a 250,000-vertex polygon stalled every other request for ~0.3 s while
    # it was parsed on the event loop. The parse here waits until a cheap request has been
    # answered: it can only be answered if the parse does not hold the event loop.
    _, lon, lat = inside_points[0]
    started, answered = threading.Event(), threading.Event()
    real_parse = route_module.parse_route_body

    def slow_parse(data: Any, default_k: int) -> Any:
        started.set()
        answered.wait(10)
        return real_parse(data, default_k)

    monkeypatch.setattr(route_module, "parse_route_body", slow_parse)
    body = {"type": "Polygon", "coordinates": [_ring(lon, lat, 2_000)]}
    assert len(orjson.dumps(body)) > route_module.INLINE_BODY_BYTES
    big: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: big.update(r=app_client.post("/v1/route", json=body)))
    worker.start()
    assert started.wait(10)
    t0 = time.perf_counter()
    cheap = app_client.get("/v1/route", params={"lon": lon, "lat": lat})
    waited = time.perf_counter() - t0
    answered.set()
    worker.join(30)
    assert cheap.status_code == 200
    assert waited < 5.0  # generous: on the event loop the parse held it for 10 s
    assert big["r"].status_code == 200, big["r"].text
    assert big["r"].json()["zones"]
