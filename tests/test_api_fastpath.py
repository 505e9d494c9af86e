"""The GET /v1/route fast path answers exactly as the FastAPI route, and delegates the rest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from api.app import GeoRouterAPI, create_app
from api.fastpath import RoutePointFastPath
from api.settings import AppSettings

POINT = {"lon": 107.6, "lat": -6.9}


@pytest.fixture(scope="module")
def app_client(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings_ = AppSettings.of(data_dir=tmp_path_factory.mktemp("fastpath"), _env_file=None)
    app = create_app(settings_, city_loader=lambda s: (demo_router, None))
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        yield client


def _full_path_only(client: TestClient) -> TestClient:
    """A client whose app skips the fast path (the plain FastAPI route answers)."""

    class Bypass:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await FastAPI.__call__(self.app, scope, receive, send)

    return TestClient(Bypass(client.app))


def test_fast_path_is_in_front_of_the_whole_stack(app_client: TestClient) -> None:
    app = app_client.app
    assert isinstance(app, GeoRouterAPI)
    assert isinstance(app.fast_path, RoutePointFastPath)


def test_same_bytes_as_the_fastapi_route(app_client: TestClient) -> None:
    headers = {"X-Request-ID": "fixed-id-1"}
    for params in (POINT, {**POINT, "k": 1, "category": "fire"}, {"lon": "1", "lat": "1"}):
        fast = app_client.get("/v1/route", params=params, headers=headers)
        slow = _full_path_only(app_client).get("/v1/route", params=params, headers=headers)
        assert fast.status_code == slow.status_code == 200
        assert fast.content == slow.content
        assert fast.headers["content-type"] == slow.headers["content-type"]
        assert fast.headers["x-request-id"] == "fixed-id-1"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"lon": "nan", "lat": "-6.9"}, 422),
        ({"lat": "-6.9"}, 422),
        ({"lon": "107.6", "lat": "-6.9", "category": "nope"}, 422),
        ({"lon": "107.6", "lat": "-6.9", "k": "0"}, 422),
    ],
)
def test_errors_fall_through_to_problem_json(
    app_client: TestClient, params: dict[str, str], status: int
) -> None:
    r = app_client.get("/v1/route", params=params)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"]


def test_fast_answers_are_counted_in_metrics(app_client: TestClient) -> None:
    app_client.get("/v1/route", params=POINT)
    text = app_client.get("/metrics").text
    lines = [ln for ln in text.splitlines() if 'route="/v1/route"' in ln and "_total" in ln]
    assert any('status="200"' in ln for ln in lines), lines
