"""Routing endpoints: one point (GET / POST, also uncertain locations) and batches.

``GET /v1/route`` is the intake hot path: call centers and SMS gateways route one point per
request, thousands of times a second, and FastAPI's per-request machinery (dependency
solving, its request wrappers, response validation) costs more than routing the point. It is
served by :class:`LeanRoute`: an ordinary route of the app (same middleware stack: request
id, metrics, body limit, catch-all; same error table; documented in the OpenAPI schema like
any other), whose endpoint gets the plain ``Request``, checks the role with the same
dependency every route uses, parses with :mod:`api.route_input` and answers the bytes of
:mod:`geo_router.encoding`. :func:`include_routes` puts it first in the app's own routes,
so matching it costs one regular expression.

The other endpoints are plain FastAPI routes. A batch is parsed, routed (against one
snapshot) and encoded column-wise in one worker thread.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.auth import Principal
from api.deps import require_roles, router_or_503
from api.request_ids import request_id_of
from api.route_input import (
    MAX_K,
    RouteQuery,
    load_json,
    parse_batch_body,
    parse_point_query,
    parse_route_body,
)
from api.schemas import PROBLEM_RESPONSES, BatchResponse, RouteResponse, body_schema_ref
from api.serialize import ORJSONResponse, json_response
from geo_router.encoding.batch import encode_batch_answer
from geo_router.encoding.json import dumps, route_answer_dict
from geo_router.encoding.point import encode_point_hits
from geo_router.errors import InvalidGeometryError

__all__ = ["ROUTE_ROLES", "LeanRoute", "include_routes", "point_route", "router"]

router = APIRouter(tags=["routing"])

#: Who may route (admin always may), single points and batches (intake gateways batch too).
ROUTE_ROLES = require_roles("intake", "planner", "analyst")


class LeanRoute(APIRoute):
    """A documented FastAPI route whose endpoint is called without FastAPI's per-request work.

    The request has come through the whole middleware stack and the router like any other;
    then the endpoint is awaited with a plain ``Request`` and its ``Response`` sent: no
    dependency solving, no response validation, no per-request exit stacks. Errors it
    raises reach the app's exception handlers (problem+json) like any route's. Its endpoint
    therefore takes only the ``Request`` (checked here) and does its own role check with the
    same dependency as everyone (``await ROUTE_ROLES(request)``).
    """

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        d = self.dependant
        params = (d.path_params, d.query_params, d.header_params, d.cookie_params, d.body_params)
        if d.dependencies or any(params):
            raise TypeError(f"{self.name}: a LeanRoute endpoint takes only the Request")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Call the endpoint; another method gets Starlette's 405."""
        if scope["method"] not in (self.methods or ()):
            await super().handle(scope, receive, send)
            return
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


#: The GET parameters, documented here because the handler parses them itself.
_ROUTE_QUERY_DOC = {
    "parameters": [
        {
            "name": "lon",
            "in": "query",
            "required": True,
            "description": "Longitude, EPSG:4326 (GeoJSON order: lon first).",
            "schema": {"type": "number", "minimum": -180, "maximum": 180},
            "example": 106.8272,
        },
        {
            "name": "lat",
            "in": "query",
            "required": True,
            "description": "Latitude, EPSG:4326.",
            "schema": {"type": "number", "minimum": -90, "maximum": 90},
            "example": -6.1754,
        },
        {
            "name": "category",
            "in": "query",
            "required": False,
            "description": "Report category code: ranks its responder types, adds its agency.",
            "schema": {"type": "string"},
        },
        {
            "name": "k",
            "in": "query",
            "required": False,
            "description": f"Responders per facility type, 1..{MAX_K} (default 3).",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K},
        },
    ]
}


async def route_point(request: Request) -> Response:
    """Zones holding the point in every layer, the k nearest responders, the category.

    Served by a :class:`LeanRoute` (the hot path): query read by :mod:`api.route_input`,
    one ``Router.route_hits`` call, the answer encoded straight from its row numbers.
    """
    await ROUTE_ROLES(request)
    query = parse_point_query(
        request.scope["query_string"], request.app.state.settings.routing.default_k
    )
    hits = router_or_503(request).route_hits(
        query.lon, query.lat, category=query.category, k=query.k
    )
    return json_response(encode_point_hits(hits, request_id_of(request.scope)))


point_route = LeanRoute(
    "/v1/route",
    route_point,
    methods=["GET"],
    tags=["routing"],
    operation_id="route_point",
    summary="Route one location (lon, lat in EPSG:4326)",
    response_class=ORJSONResponse,
    responses={**PROBLEM_RESPONSES, 200: {"model": RouteResponse}},
    openapi_extra=_ROUTE_QUERY_DOC,
)


#: Bodies up to this size are parsed on the event loop (a point or a small polygon: a thread
#: hop would cost more); bigger ones, heavy geometry, in a worker thread.
INLINE_BODY_BYTES = 16 * 1024


def read_route_body(body: bytes, default_k: int) -> RouteQuery:
    """Parse a ``POST /v1/route`` body: JSON, then the location (shapely for polygons)."""
    return parse_route_body(load_json(body), default_k)


def include_routes(app: FastAPI) -> None:
    """Add the routing endpoints to ``app``: ``GET /v1/route`` first, then the others."""
    app.router.routes.insert(0, point_route)
    app.include_router(router, responses=PROBLEM_RESPONSES)


@router.post(
    "/v1/route",
    operation_id="route_location",
    summary="Route a point, a GeoJSON geometry/Feature, x/y in a CRS, or an uncertain area",
    response_class=ORJSONResponse,
    responses={200: {"model": RouteResponse}},
    openapi_extra=body_schema_ref(
        "LonLatBody", "XYBody", "PointGeometry", "PolygonGeometry", "RouteFeature"
    ),
)
async def route_location(
    request: Request, _principal: Principal = Depends(ROUTE_ROLES)
) -> Response:
    """Route one location given as a JSON body; circles and polygons list zone shares."""
    body = await request.body()
    query = (
        read_route_body(body, request.app.state.settings.routing.default_k)
        if len(body) <= INLINE_BODY_BYTES
        # A big polygon takes seconds to parse: in a worker thread the event loop stays free.
        else await run_in_threadpool(
            read_route_body, body, request.app.state.settings.routing.default_k
        )
    )
    city = router_or_503(request)
    location = query.location
    if isinstance(location, tuple):
        result: Any = city.route(*location, category=query.category, k=query.k)
    else:
        try:
            result = await run_in_threadpool(
                city.route_area, location, category=query.category, k=query.k
            )
        except InvalidGeometryError as exc:  # the router knows the area, not the request
            exc.detail.setdefault("field", query.field)
            raise
    return json_response(dumps(route_answer_dict(result, request_id_of(request.scope))))


@router.post(
    "/v1/route/batch",
    operation_id="route_batch",
    summary="Route up to batch_limit points in one request (compact answers, input order)",
    response_class=ORJSONResponse,
    responses={200: {"model": BatchResponse}},
    openapi_extra=body_schema_ref("BatchPoints", "BatchFeatureCollection"),
)
async def route_batch(request: Request, _principal: Principal = Depends(ROUTE_ROLES)) -> Response:
    """Route many points; a row with unusable coordinates answers ``{"error": ...}`` in place."""
    body = await request.body()
    city = router_or_503(request)
    limit = request.app.state.settings.routing.batch_limit
    rid = request_id_of(request.scope)

    def answer() -> bytes:  # in a worker thread: the event loop stays free
        query = parse_batch_body(load_json(body), limit)
        return encode_batch_answer(
            city,
            query.lon,
            query.lat,
            k=query.k,
            category=query.category,
            row_errors=query.row_errors,
            request_id=rid,
        )

    return json_response(await run_in_threadpool(answer))
