"""The malformed corpus (``tests/data/malformed/corpus.json``) against every endpoint that
takes a location, on both backends: each case gets its documented outcome, never a 500, and
the service keeps answering ``GET /v1/route`` after each.

A case holds one kind of input (see the corpus' ``kinds``), its name, what it is (``doc``) and
``expect``: per endpoint, the documented outcome ``"<status>"`` or ``"<status>:<field>"`` (the
problem names that field). ``@lon``/``@lat`` stand for a point inside the demo city, and
``["@", dx, dy]`` for that point moved by (dx, dy) degrees.

Set ``GEO_ROUTER_CORPUS_RECORD=1`` to print the outcomes seen instead of checking them (to
document a new case; review every outcome before committing it).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AppSettings
from geo_router.intake.secrets import write_new_secrets_file
from geo_router.store import Store

CORPUS = Path(__file__).parent / "data" / "malformed" / "corpus.json"
LOCAL_PEER = ("127.0.0.1", 50000)
RECORD = os.environ.get("GEO_ROUTER_CORPUS_RECORD") == "1"
_PHONES = itertools.count(1_000_000)


def _corpus() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CORPUS.read_text(encoding="utf-8"))
    return data


# --- inputs --------------------------------------------------------------------------------


def _place(value: Any, lon: float, lat: float) -> Any:
    """The corpus value with ``@lon``/``@lat`` and ``["@", dx, dy]`` filled in."""
    if value == "@lon":
        return lon
    if value == "@lat":
        return lat
    if isinstance(value, str):
        return value.replace("@lon", repr(lon)).replace("@lat", repr(lat))
    if isinstance(value, list):
        if len(value) == 3 and value[0] == "@":
            return [lon + value[1], lat + value[2]]
        return [_place(v, lon, lat) for v in value]
    if isinstance(value, dict):
        return {k: _place(v, lon, lat) for k, v in value.items()}
    return value


def _as_text(value: Any) -> str:
    """How a JSON value of the corpus is written in a query string or a form."""
    return value if isinstance(value, str) else json.dumps(value)


@lru_cache(maxsize=4)
def _generated(kind: str, size: int, lon: float, lat: float) -> bytes:
    """A generated body: arrays nested ``size`` deep, or a ring of ``size`` vertices."""
    if kind == "nested":
        return b"[" * size + b"]" * size
    step = 2.0 * math.pi / size
    ring = [[lon + 0.01 * math.cos(i * step), lat + 0.01 * math.sin(i * step)] for i in range(size)]
    ring.append(ring[0])
    return orjson.dumps({"type": "Polygon", "coordinates": [ring]})


# --- the endpoints -------------------------------------------------------------------------


class Target:
    """Sends one case to the endpoints that take a location, with the right key and shape."""

    def __init__(self, client: TestClient, keys: dict[str, str], point: tuple[float, float]):
        self.client = client
        self.keys = keys
        self.lon, self.lat = point

    def _json(self, path: str, payload: Any, raw: bytes | None = None) -> httpx.Response:
        # json, not orjson: the corpus holds integers beyond 64 bits
        content = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Authorization": f"Bearer {self.keys['admin']}"}
        headers["Content-Type"] = "application/json"
        return self.client.post(path, content=content, headers=headers)

    def get(self, path: str, params: dict[str, str]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys['admin']}"}
        return self.client.get(path, params=params, headers=headers)

    def _open311(self, lon: str, lat: str) -> httpx.Response:
        form = {"api_key": self.keys["web"], "service_code": "waste", "lat": lat, "long": lon}
        return self.client.post("/open311/v2/requests.json", data=form)

    def _location_bodies(self, location: Any) -> dict[str, Callable[[], httpx.Response]]:
        phone = f"+62812{next(_PHONES):07d}"
        report = {"channel": "web", "category": "waste", "location": location}
        return {
            "reports": lambda: self._json("/v1/reports", report),
            "subscribers": lambda: self._json(
                "/v1/subscribers", {"phone": phone, "location": location}
            ),
        }

    def requests(self, case: dict[str, Any]) -> dict[str, Callable[[], httpx.Response]]:
        """endpoint name -> a call sending ``case`` there."""
        value = _place(case.get(_kind(case)), self.lon, self.lat)
        if "geometry" in case:
            collection = {"type": "FeatureCollection", "features": [_feature(value)]}
            return {
                "route_post": lambda: self._json("/v1/route", value),
                "route_feature": lambda: self._json("/v1/route", _feature(value)),
                "batch": lambda: self._json("/v1/route/batch", collection),
            }
        if "point" in case:
            lon, lat = value
            texts = {"lon": _as_text(lon), "lat": _as_text(lat)}
            return {
                "route_get": lambda: self.get("/v1/route", texts),
                "route_post": lambda: self._json("/v1/route", {"lon": lon, "lat": lat}),
                "batch": lambda: self._json("/v1/route/batch", {"points": [[lon, lat]]}),
                "open311": lambda: self._open311(texts["lon"], texts["lat"]),
                **self._location_bodies({"lon": lon, "lat": lat}),
            }
        if "text" in case:
            lon, lat = (_as_text(v) for v in value)
            return {
                "route_get": lambda: self.get("/v1/route", {"lon": lon, "lat": lat}),
                "open311": lambda: self._open311(lon, lat),
            }
        if "bbox" in case:
            return {
                "collection_items": lambda: self.get(
                    "/v1/collections/kelurahan/items", {"bbox": value}
                ),
                "reports_list": lambda: self.get("/v1/reports", {"bbox": value}),
            }
        return {
            name: (lambda path=path, raw=self._raw(case, value, name): self._json(path, None, raw))
            for name, path in (
                ("route_post", "/v1/route"),
                ("batch", "/v1/route/batch"),
                ("reports", "/v1/reports"),
                ("subscribers", "/v1/subscribers"),
            )
        }

    def _raw(self, case: dict[str, Any], value: Any, endpoint: str) -> bytes:
        """The raw body of a ``body`` or ``generate`` case for one endpoint."""
        if "generate" in case:
            return _generated(value["kind"], value["size"], self.lon, self.lat)
        text = value[endpoint] if isinstance(value, dict) else value
        return str(text).replace("@phone", f"+62812{next(_PHONES):07d}").encode("utf-8")


def _kind(case: dict[str, Any]) -> str:
    (kind,) = [k for k in ("geometry", "point", "text", "bbox", "body", "generate") if k in case]
    return kind


def _feature(geometry: Any) -> Any:
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        return geometry
    return {"type": "Feature", "geometry": geometry, "properties": {}}


# --- outcomes ------------------------------------------------------------------------------


def _named_fields(response: httpx.Response) -> str:
    """Everything in an error answer that can name a field (problem+json or Open311 list)."""
    try:
        data = response.json()
    except ValueError:
        return response.text
    return json.dumps(data)


def outcome(endpoint: str, response: httpx.Response) -> str:
    """The outcome as the corpus writes it: ``"<status>"``, ``"200:row_error"``."""
    status = response.status_code
    if status >= 400 and endpoint != "open311" and status != 413:
        errors = response.json().get("errors") or []
        return f"{status}:{errors[0]['field']}" if errors else str(status)
    if endpoint == "batch" and status == 200:
        rows = response.json().get("results") or response.json().get("rows") or []
        if any(isinstance(row, dict) and "error" in row for row in rows):
            return "200:row_error"
    return str(status)


def check(endpoint: str, expected: str, response: httpx.Response) -> None:
    """The response matches the documented outcome; an error answer names the field."""
    status, _, field = expected.partition(":")
    assert response.status_code != 500, response.text
    if field == "row_error":
        assert outcome(endpoint, response) == expected, response.text[:500]
        return
    assert response.status_code == int(status), response.text[:500]
    if response.status_code < 400:
        return
    if endpoint == "open311":
        (error,) = response.json()
        assert error["code"] == response.status_code
    elif response.status_code != 413:
        assert response.headers["content-type"].startswith("application/problem+json")
    if field:
        assert field in _named_fields(response), response.text[:500]


# --- the app, per backend ------------------------------------------------------------------


@pytest.fixture(scope="module")
def target(
    module_database_url: str, demo_router: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The real app over a fresh store of each backend, with an admin and an intake key."""
    folder = tmp_path_factory.mktemp("corpus")
    write_new_secrets_file(folder / "secrets.json")  # an external database needs them given
    settings = AppSettings.of(
        data_dir=folder,
        database_url=module_database_url,
        secrets_file=folder / "secrets.json",
        _env_file=None,
    )
    with Store.open(settings.store) as store:
        keys = {
            "admin": store.keys.create("admin", "corpus admin")[0],
            "web": store.keys.create("intake", "corpus web", channel="web")[0],
        }
    point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(app, client=LOCAL_PEER, raise_server_exceptions=False) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        yield Target(client, keys, (float(point.x), float(point.y)))


def test_the_corpus_is_documented() -> None:
    corpus = _corpus()
    cases = corpus["cases"]
    assert len(cases) >= 30
    names = [case["name"] for case in cases]
    assert len(set(names)) == len(names), "case names are unique"
    for case in cases:
        assert case["doc"] and case["expect"], case["name"]
        assert set(case["expect"]) <= set(corpus["endpoints"]), case["name"]


@pytest.mark.parametrize("case", _corpus()["cases"], ids=lambda case: case["name"])
def test_each_case_gets_its_documented_outcome(target: Target, case: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    for endpoint, send in target.requests(case).items():
        response = send()
        assert response.status_code != 500, (endpoint, response.text[:500])
        if RECORD:
            seen[endpoint] = outcome(endpoint, response)
        else:
            assert endpoint in case["expect"], f"{endpoint} has no documented outcome"
            check(endpoint, case["expect"][endpoint], response)
        alive = target.get("/v1/route", {"lon": repr(target.lon), "lat": repr(target.lat)})
        assert alive.status_code == 200, (endpoint, alive.text[:300])
    if RECORD:
        print(f"\nRECORD {case['name']} {json.dumps(seen)}")
