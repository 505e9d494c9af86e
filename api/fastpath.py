"""GET /v1/route without FastAPI's per-request machinery: the intake hot path.

Call centers and SMS gateways route one point per request, thousands of times a second.
Routing a point costs a few tens of µs; FastAPI's routing, dependency resolution, request
object and middleware stack cost more. This pure ASGI layer, in front of the whole app
(:class:`api.app.GeoRouterAPI`), answers the *happy path* of ``GET /v1/route`` itself with
exactly the same bytes the FastAPI route would send (same parser, same serializer, same
role check, request id and metrics). Anything else (a missing or bad parameter, no key, a
wrong role, a city not yet loaded, an unknown category) falls through untouched to the
FastAPI route, which answers the documented problem+json; so the error contract has one
implementation.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import check_role
from api.middleware import REQUEST_ID_OK, new_request_id
from api.routers.route import ROUTE_ROLE_NAMES, route_point_body
from geo_router.errors import GeoRouterError

__all__ = ["RoutePointFastPath"]

_PATH = "/v1/route"
#: Headers the fast path reads (names as ASGI gives them: lower-case bytes).
_AUTH_HEADERS = {b"authorization": "authorization", b"x-api-key": "x-api-key"}


class RoutePointFastPath:
    """Serve successful ``GET /v1/route`` requests directly; pass everything else on.

    Parameters
    ----------
    app
        The rest of the ASGI stack.
    state
        The FastAPI ``app.state`` (router, authenticator, settings, metrics), read per
        request so a reload or an atomic router swap is seen at once.
    """

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state
        # Starlette's State keeps its attributes in a dict; reading it directly saves an
        # attribute hook per lookup on the hot path (same values, read per request).
        self._values: dict[str, Any] | None = getattr(state, "_state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the happy path of GET /v1/route, or delegate."""
        if scope["type"] == "http" and scope["path"] == _PATH and scope["method"] == "GET":
            start = time.perf_counter()
            answer = self._answer(scope)
            if answer is not None:
                body, rid = answer
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body)),
                            (b"x-request-id", rid),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                self._value("metrics").observe(_PATH, "GET", 200, time.perf_counter() - start)
                return
        await self.app(scope, receive, send)

    def _value(self, name: str) -> Any:
        """``app.state.<name>``, None when unset."""
        values = self._values
        return values.get(name) if values is not None else getattr(self.state, name, None)

    def _answer(self, scope: Scope) -> tuple[bytes, bytes] | None:
        """The encoded answer and request id, or None when the full path must answer."""
        router, auth = self._value("router"), self._value("auth")
        if router is None or auth is None:
            return None
        headers: dict[str, str] = {}
        rid = b""
        for name, value in scope["headers"]:
            if name in _AUTH_HEADERS:
                headers[_AUTH_HEADERS[name]] = value.decode("latin-1")
            elif name == b"x-request-id" and REQUEST_ID_OK.match(value):
                rid = value
        rid = rid or new_request_id()
        try:
            check_role(auth.authenticate(headers), ROUTE_ROLE_NAMES)
            body = route_point_body(
                router, scope["query_string"], self._value("settings").default_k, rid.decode()
            )
        except GeoRouterError:
            return None  # the FastAPI route answers the same request with the problem+json
        except Exception:
            return None
        return body, rid
