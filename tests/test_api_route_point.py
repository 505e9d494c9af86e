"""GET /v1/route: one implementation, a lean route inside the app's routing and middleware."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from api.app import create_app
from api.routers.route import LeanRoute, point_route
from geo_router.encoding.json import dumps, route_answer_dict
from geo_router.settings import Settings

POINT = {"lon": 107.6, "lat": -6.9}


@pytest.fixture(scope="module")
def app_client(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings_ = Settings(data_dir=tmp_path_factory.mktemp("route_point"), _env_file=None)
    app = create_app(settings_, city_loader=lambda s: (demo_router, None))
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        yield client


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
