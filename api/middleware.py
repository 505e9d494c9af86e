"""Pure ASGI middleware: request ids, a body size limit, Prometheus metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) because each layer then costs a few microseconds,
not a task and a queue per request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, problem_body
from api.request_ids import REQUEST_ID_OK, new_request_id, request_id_of, set_request_id
from api.request_metrics import Metrics

__all__ = [
    "REQUEST_ID_OK",
    "BodyLimitMiddleware",
    "CatchAllMiddleware",
    "MetricsMiddleware",
    "RequestIdMiddleware",
    "new_request_id",
]

log = logging.getLogger("geo_router.api")


async def _send_problem(send: Send, body: dict[str, Any], *headers: tuple[bytes, bytes]) -> None:
    """Answer a problem+json document straight on the ASGI ``send`` (outside FastAPI)."""
    content = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": body["status"],
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(content)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


class RequestIdMiddleware:
    """Take ``X-Request-ID`` from the request (when sane) or make one; echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tag the request and its response with a request id."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value if REQUEST_ID_OK.match(value) else b""
                break
        if not rid:
            rid = new_request_id()
        set_request_id(scope, rid.decode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class CatchAllMiddleware:
    """Last resort: log an unexpected exception, answer a 500 problem (a 500 is a bug).

    It sits inside the request-id layer so that even a 500 carries the request id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; turn an escaping exception into a problem response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception(
                "unhandled %s on %s %s", type(exc).__name__, scope.get("method"), scope.get("path")
            )
            if started:  # too late for a problem document: let the server drop the connection
                raise
            body = problem_body(
                500,
                "internal error; quote the request_id when reporting it",
                instance=scope.get("path"),
                request_id=request_id_of(scope),
            )
            await _send_problem(send, body)


class _BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes the limit."""


async def _send_413(scope: Scope, send: Send, limit: int, *, declared: int | None) -> None:
    """Answer 413 problem+json naming the limit."""
    got = f"Content-Length {declared}" if declared is not None else "the streamed body"
    body = problem_body(
        413,
        f"request body too large: {got} exceeds the limit of {limit} bytes",
        type_uri=PROBLEM_TYPE_BASE + "body-too-large",
        instance=scope.get("path"),
        request_id=request_id_of(scope),
        extra={"limit_bytes": limit},
    )
    await _send_problem(send, body, (b"connection", b"close"))


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, before reading them whole.

    A declared ``Content-Length`` over the limit is refused without reading a byte; a
    chunked body is counted as it streams and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count the streamed bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _send_413(scope, send, limit, declared=declared)
                    return
                break
        seen = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # the app's answer to a truncated body is dropped for the 413
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded and not started:
            await _send_413(scope, send, limit, declared=None)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label values), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Count requests and time them, by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and record its status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(
                _route_template(scope), scope["method"], status, time.perf_counter() - start
            )
