"""The OpenAPI schema of the routing answers says what the encoders write, field for field.

Real answers (inside a zone, near a boundary, outside the city, with a category, an
uncertain area, batches with bad rows) are encoded by the library's encoders and walked
against the documented schema: a key the schema does not declare fails, and so does a
declared field that no answer carries. Adding a field to a result dataclass (which the
schema is generated from) therefore fails here until the encoder writes it, and a field the
encoder writes fails until the model has it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AppSettings
from geo_router.encoding.batch import encode_batch_answer
from geo_router.encoding.json import dumps, route_answer_dict
from geo_router.encoding.point import encode_point_hits

#: A loopback peer: open mode (no key ever) serves only this machine.
LOCAL_PEER = ("127.0.0.1", 50000)

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}


class SchemaWalk:
    """Checks values against an OpenAPI schema; records every field path it saw."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.components = doc["components"]["schemas"]
        self.seen: set[str] = set()

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def problems(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        """Why ``value`` does not fit ``schema`` (empty when it does); records seen fields."""
        schema = self.resolve(schema)
        if "anyOf" in schema:
            tries = [self.problems(value, branch, path) for branch in schema["anyOf"]]
            return [] if any(not t for t in tries) else min(tries, key=len)
        if "enum" in schema and value not in schema["enum"]:
            return [f"{path}: {value!r} not in {schema['enum']}"]
        kind = schema.get("type")
        if kind is not None and (
            not isinstance(value, _JSON_TYPES[kind]) or (kind != "boolean" and value is True)
        ):
            return [f"{path}: {type(value).__name__} is not {kind}"]
        if isinstance(value, list):
            return [p for item in value for p in self.problems(item, schema["items"], path + "[]")]
        if not isinstance(value, dict):
            return []
        if "properties" in schema:
            out = [
                f"{path}.{key}: not in the schema"
                for key in value
                if key not in schema["properties"]
            ]
            for key, sub in schema["properties"].items():
                if key in value:
                    self.seen.add(f"{path}.{key}")
                    out += self.problems(value[key], sub, f"{path}.{key}")
            return out
        extra = schema.get("additionalProperties", {})
        return [p for item in value.values() for p in self.problems(item, extra, path + ".*")]

    def declared(self, schema: dict[str, Any], path: str, depth: int = 0) -> set[str]:
        """Every field path the schema declares."""
        schema = self.resolve(schema)
        out: set[str] = set()
        if depth > 8:
            return out
        for branch in schema.get("anyOf", []):
            out |= self.declared(branch, path, depth + 1)
        if "items" in schema:
            out |= self.declared(schema["items"], path + "[]", depth + 1)
        if isinstance(schema.get("additionalProperties"), dict):
            out |= self.declared(schema["additionalProperties"], path + ".*", depth + 1)
        for key, sub in schema.get("properties", {}).items():
            out.add(f"{path}.{key}")
            out |= self.declared(sub, f"{path}.{key}", depth + 1)
        return out


@pytest.fixture(scope="module")
def openapi(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = AppSettings.of(data_dir=tmp_path_factory.mktemp("schema"), _env_file=None)
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    return app.openapi()


def _answer_schema(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    responses = doc["paths"][path][method]["responses"]
    return responses["200"]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def _sample_points(router: Any) -> Iterator[tuple[float, float]]:
    """Inside zones, on zone vertices (near boundaries), outside the city."""
    layer = next(iter(router.snapshot.layers.values()))
    for p in shapely.point_on_surface(np.asarray(layer.geometries[:5])):
        yield float(p.x), float(p.y)
    yield from map(tuple, shapely.get_coordinates(layer.geometries[:3])[::40].tolist())
    yield 0.0, 0.0


def _point_answers(router: Any) -> Iterator[dict[str, Any]]:
    codes = [None, *router.snapshot.categories]
    for i, (lon, lat) in enumerate(_sample_points(router)):
        category = codes[i % len(codes)]
        yield orjson.loads(encode_point_hits(router.route_hits(lon, lat, category=category), "r"))
        result = router.route(lon, lat, category=category, k=2)
        yield orjson.loads(dumps(route_answer_dict(result, None)))
    lon, lat = next(_sample_points(router))
    area = router.route_area(shapely.Point(lon, lat).buffer(0.01), category=codes[-1])
    yield orjson.loads(dumps(route_answer_dict(area, "r")))


def test_the_routing_answer_is_what_the_schema_says(
    openapi: dict[str, Any], demo_router: Any
) -> None:
    walk = SchemaWalk(openapi)
    schema = _answer_schema(openapi, "/v1/route", "get")
    assert schema == _answer_schema(openapi, "/v1/route", "post")
    for answer in _point_answers(demo_router):
        assert walk.problems(answer, schema, "") == []
    assert walk.declared(schema, "") - walk.seen == set(), "documented but never written"


def test_the_batch_answer_is_what_the_schema_says(
    openapi: dict[str, Any], demo_router: Any
) -> None:
    walk = SchemaWalk(openapi)
    schema = _answer_schema(openapi, "/v1/route/batch", "post")
    points = np.array([*_sample_points(demo_router), (200.0, 0.0), (np.nan, 1.0)])
    errors: list[str | None] = [None] * len(points)
    errors[-1] = f"points[{len(points) - 1}] is not a [lon, lat] pair of numbers"
    for category in (None, next(iter(demo_router.snapshot.categories))):
        answer = encode_batch_answer(
            demo_router,
            points[:, 0],
            points[:, 1],
            k=2,
            category=category,
            row_errors=errors,
            request_id="r",
        )
        assert walk.problems(orjson.loads(answer), schema, "") == []
    assert walk.declared(schema, "") - walk.seen == set(), "documented but never written"


def test_a_field_the_schema_lacks_is_caught(openapi: dict[str, Any], demo_router: Any) -> None:
    """The walk itself: an extra key in a responder, or a missing one, is reported."""
    walk = SchemaWalk(openapi)
    schema = _answer_schema(openapi, "/v1/route", "get")
    answer = next(_point_answers(demo_router))
    kind = next(iter(answer["responders"]))
    answer["responders"][kind][0]["phone"] = "+62 22 000"
    assert walk.problems(answer, schema, "") == [".responders.*[].phone: not in the schema"]
    walk.seen.clear()
    del answer["responders"][kind][0]["phone"]
    for entries in answer["responders"].values():
        for entry in entries:
            del entry["bearing_deg"]
    walk.problems(answer, schema, "")
    assert ".responders.*[].bearing_deg" in walk.declared(schema, "") - walk.seen


def test_the_served_answer_is_the_encoders(
    demo_router: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The API sends the library's bytes: it never re-encodes."""
    settings = AppSettings.of(data_dir=tmp_path_factory.mktemp("schema_served"), _env_file=None)
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    lon, lat = next(_sample_points(demo_router))
    with TestClient(app, client=LOCAL_PEER) as client:
        assert app.state.ready_event.wait(60)
        r = client.post("/v1/route", json={"lon": lon, "lat": lat}, headers={"X-Request-ID": "a1"})
    assert r.content == dumps(route_answer_dict(demo_router.route(lon, lat), "a1"))
