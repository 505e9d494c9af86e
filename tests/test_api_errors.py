"""The error contract: every failure is application/problem+json naming the problem."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api.app import create_app
from api.errors import STATUS_BY_ERROR, BodyTooLargeError, MalformedJSONError, status_for
from api.settings import AppSettings
from geo_router import errors as E  # noqa: N812 - short alias for a long list

#: A loopback peer: open mode (no key ever) serves only this machine.
LOCAL_PEER = ("127.0.0.1", 50000)

PROBLEM = "application/problem+json"
LIMIT = 4096


class _Body(BaseModel):
    name: str
    size: int


@pytest.fixture(scope="module")
def app_and_client(
    demo_router: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, TestClient]]:
    settings = AppSettings.of(
        data_dir=tmp_path_factory.mktemp("api_err"), max_body_bytes=LIMIT, _env_file=None
    )
    app = create_app(settings, city_loader=lambda s: (demo_router, None))

    async def boom() -> None:
        raise RuntimeError("secret internals")

    async def limited() -> None:
        raise E.RateLimitedError("over 20 reports per hour for this number", retry_after_s=90)

    async def typed(body: _Body) -> dict[str, str]:
        return {"ok": body.name}

    app.add_api_route("/test/boom", boom)
    app.add_api_route("/test/limited", limited)
    app.add_api_route("/test/typed", typed, methods=["POST"])
    with TestClient(app, raise_server_exceptions=False, client=LOCAL_PEER) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        yield app, client


@pytest.fixture(scope="module")
def client(app_and_client: tuple[Any, TestClient]) -> TestClient:
    return app_and_client[1]


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= set(body)
    assert body["status"] == status
    assert body["request_id"] == r.headers["x-request-id"]
    return body


def test_every_domain_error_class_has_a_status() -> None:
    for cls in (getattr(E, name) for name in E.__all__):
        assert status_for(cls("x") if cls is not E.RateLimitedError else cls("x", retry_after_s=1))
    expected = {
        E.InputError: 422,
        E.InvalidCoordinatesError: 422,
        E.UnknownCRSError: 422,
        E.BatchTooLargeError: 413,
        E.NotFoundError: 404,
        E.AuthenticationError: 401,
        E.PermissionDeniedError: 403,
        E.RateLimitedError: 429,
        E.LayerValidationError: 422,
        E.IdempotencyConflictError: 422,
        E.ConfigurationError: 503,
        E.ProfileError: 503,
        MalformedJSONError: 400,
        BodyTooLargeError: 413,
    }
    for cls, status in expected.items():
        assert STATUS_BY_ERROR[cls] == status, cls


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("lon=nan&lat=-6.9", "lon must be a number, got 'nan'"),
        ("lon=107.6&lat=Infinity", "lat must be a number, got 'Infinity'"),
        ("lon=-inf&lat=-6.9", "lon must be a number, got '-inf'"),
        ("lon=1e400&lat=-6.9", "lon is infinite"),
        ("lon=190&lat=-6.9", "lon 190 is out of range"),
        ("lon=107.6&lat=-6.9&category=unicorn", "unicorn"),
    ],
)
def test_query_problems(client: TestClient, query: str, needle: str) -> None:
    body = _problem(client.get(f"/v1/route?{query}"), 422)
    assert needle in body["detail"]
    assert body["type"].startswith("https://geo-router.dev/problems/")


@pytest.mark.parametrize(
    ("raw", "status", "needle", "type_slug"),
    [
        (b'{"lon": NaN, "lat": 1}', 400, "position 8", "malformed-json"),
        (b'{"lon": Infinity, "lat": 1}', 400, "position 8", "malformed-json"),
        (b'{"lon": 107.6, "lat": ', 400, "position", "malformed-json"),
        (b"", 400, "empty", "malformed-json"),
        (b'{"lon": "107.6", "lat": -6.9}', 422, "lon must be a number", "input"),
        (b'{"lon": 107.6, "lat": 95}', 422, "lat 95 is out of range", "invalid-coordinates"),
        (b'{"x": 1, "y": 2, "crs": "EPSG:999999"}', 422, "EPSG:999999", "unknown-crs"),
        (b'{"x": 1, "y": 2}', 422, "crs", "input"),
        (b'{"type": "Point", "coordinates": [107.6]}', 422, "coordinates", "invalid-geometry"),
        (
            b'{"type": "LineString", "coordinates": [[0, 0], [1, 1]]}',
            422,
            "LineString",
            "invalid-geometry",
        ),
        (b'{"type": "Feature", "geometry": null}', 422, "geometry", "invalid-geometry"),
        (
            b'{"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}',
            422,
            "Polygon",
            "invalid-geometry",
        ),
        (
            b'{"type": "Polygon", "coordinates": [[[0,0],[2,2],[2,0],[0,2],[0,0]]]}',
            422,
            "Self-intersection",
            "invalid-geometry",
        ),
        (b'{"lon": 107.6, "lat": -6.9, "radius_m": -5}', 422, "radius_m", "input"),
        (b'{"lon": 107.6, "lat": -6.9, "k": true}', 422, "k must be", "input"),
        (b"[1, 2]", 422, "JSON object", "input"),
        (b'{"hello": 1}', 422, "lon", "input"),
    ],
)
def test_body_problems(
    client: TestClient, raw: bytes, status: int, needle: str, type_slug: str
) -> None:
    r = client.post("/v1/route", content=raw, headers={"content-type": "application/json"})
    body = _problem(r, status)
    assert needle in body["detail"], body
    assert body["type"].endswith("/" + type_slug), body


def test_field_errors_are_listed(client: TestClient) -> None:
    body = _problem(client.get("/v1/route?lon=nan&lat=100"), 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"lon", "lat"}


def test_fastapi_validation_and_json_errors_are_problems(client: TestClient) -> None:
    body = _problem(client.post("/test/typed", json={"name": "a", "size": "big"}), 422)
    assert body["errors"][0]["field"] == "body.size"
    raw = client.post(
        "/test/typed", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert "position" in _problem(raw, 400)["detail"]


def test_404_405_500_and_429(client: TestClient) -> None:
    assert "/nowhere" in _problem(client.get("/nowhere"), 404)["detail"]
    assert "PUT" in _problem(client.put("/v1/route/batch"), 405)["detail"]
    crash = _problem(client.get("/test/boom"), 500)
    assert "secret internals" not in crash["detail"]
    limited = client.get("/test/limited")
    _problem(limited, 429)
    assert limited.headers["retry-after"] == "90"


def test_oversized_batch_names_the_limit(demo_router: Any, tmp_path: Any) -> None:
    app = create_app(
        AppSettings.of(data_dir=tmp_path, batch_limit=5, _env_file=None),
        city_loader=lambda s: (demo_router, None),
    )
    with TestClient(app, client=LOCAL_PEER) as c:
        app.state.ready_event.wait(60)
        body = _problem(c.post("/v1/route/batch", json={"points": [[107.6, -6.9]] * 6}), 413)
        assert "limit of 5" in body["detail"]
        assert c.post("/v1/route/batch", json={"points": [[107.6, -6.9]] * 5}).status_code == 200


def _asgi_post(app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> dict:
    """POST /v1/route through the raw ASGI app; records how many body chunks were read."""
    sent: list[dict[str, Any]] = []
    read = {"chunks": 0}

    async def receive() -> dict[str, Any]:
        if read["chunks"] >= len(chunks):
            raise AssertionError("the body was read past its end")
        read["chunks"] += 1
        more = read["chunks"] < len(chunks)
        return {"type": "http.request", "body": chunks[read["chunks"] - 1], "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/route",
        "raw_path": b"/v1/route",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {"status": start["status"], "headers": dict(start["headers"]), "body": body, **read}


def test_declared_oversized_body_is_refused_before_reading(
    app_and_client: tuple[Any, TestClient],
) -> None:
    app = app_and_client[0]
    out = _asgi_post(app, [(b"content-length", str(LIMIT + 1).encode())], [b"x" * (LIMIT + 1)])
    assert out["status"] == 413
    assert out["chunks"] == 0  # not a byte read
    assert out["headers"][b"content-type"] == PROBLEM.encode()
    assert f"limit of {LIMIT} bytes" in orjson.loads(out["body"])["detail"]


def test_streamed_oversized_body_is_cut_off(app_and_client: tuple[Any, TestClient]) -> None:
    app = app_and_client[0]
    chunks = [b" " * 1024] * 10  # chunked: no Content-Length, 10 KiB > 4 KiB
    out = _asgi_post(app, [(b"transfer-encoding", b"chunked")], chunks)
    assert out["status"] == 413
    assert out["chunks"] < len(chunks)  # stopped reading once over the limit
    assert "streamed body" in orjson.loads(out["body"])["detail"]


def test_small_body_passes_the_limit(client: TestClient) -> None:
    r = client.post("/v1/route", json={"lon": 107.6, "lat": -6.9})
    assert r.status_code == 200
