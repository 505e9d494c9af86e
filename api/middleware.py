"""The one pure ASGI middleware: request id, catch-all 500, metrics, body limit, admission.

Pure ASGI (not ``BaseHTTPMiddleware``) and one layer, not four: every request pays for one
call and one ``send`` wrapper, not four of each. The four concerns keep the order they had as
separate layers, outermost first:

1. request id: taken from ``X-Request-ID`` (when sane) or made; echoed on every answer,
   including the 500 and 413 problems this layer writes itself;
2. catch-all: an unexpected exception is logged and answered 500 problem+json (a 500 is a
   bug), or re-raised when the response had already started;
3. metrics: requests counted and timed by route template, method and status (before the
   catch-all answers, so an exception counts as a 500);
4. body limit: a declared ``Content-Length`` over the limit is refused 413 without reading a
   byte; a streamed body is counted and refused as soon as it passes the limit (the app's
   answer to the truncated body is dropped for the 413);
5. admission (:mod:`api.admission`): a request of a full lower lane, or any lower-lane
   request while the event loop is late, is answered 503 with ``Retry-After`` here, without
   reaching the app; emergencies are never shed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.admission import Admission, lane_of, overloaded_problem
from api.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, problem_body
from api.request_ids import REQUEST_ID_OK, new_request_id, request_id_of, set_request_id
from api.request_metrics import Metrics

__all__ = ["REQUEST_ID_OK", "ApiMiddleware", "new_request_id"]

log = logging.getLogger("geo_router.api")

_PROBLEM_CONTENT_TYPE = (b"content-type", PROBLEM_MEDIA_TYPE.encode())


class _BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes the limit."""


def _scan_headers(headers: Any) -> tuple[bytes, int | None]:
    """The request id (the first ``X-Request-ID`` if sane, else a new one) and the first
    declared ``Content-Length`` (-1 when unreadable, None when absent), in one pass."""
    rid: bytes | None = None
    declared: int | None = None
    for name, value in headers:
        if name == b"x-request-id":
            if rid is None:
                rid = value if REQUEST_ID_OK.match(value) else b""
        elif name == b"content-length" and declared is None:
            try:
                declared = int(value)
            except ValueError:
                declared = -1
    return rid or new_request_id(), declared


def _route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label values), or ``unmatched``."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def _too_large(scope: Scope, limit: int, declared: int | None) -> dict[str, Any]:
    """The 413 problem naming the limit."""
    got = f"Content-Length {declared}" if declared is not None else "the streamed body"
    return problem_body(
        413,
        f"request body too large: {got} exceeds the limit of {limit} bytes",
        type_uri=PROBLEM_TYPE_BASE + "body-too-large",
        instance=scope.get("path"),
        request_id=request_id_of(scope),
        extra={"limit_bytes": limit},
    )


def _internal_error(scope: Scope) -> dict[str, Any]:
    """The 500 problem for an unexpected exception."""
    return problem_body(
        500,
        "internal error; quote the request_id when reporting it",
        instance=scope.get("path"),
        request_id=request_id_of(scope),
    )


async def _send_problem(send: Send, body: dict[str, Any], *headers: tuple[bytes, bytes]) -> None:
    """Answer a problem+json document straight on the ASGI ``send`` (outside FastAPI)."""
    content = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": body["status"],
            "headers": [
                _PROBLEM_CONTENT_TYPE,
                (b"content-length", str(len(content)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


class ApiMiddleware:
    """Request id, catch-all 500, metrics, body limit and admission in one pure ASGI layer."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, max_bytes: int, admission: Admission | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.admission = admission

    async def _enter(
        self, scope: Scope, receive: Receive
    ) -> tuple[str | None, str | None, Receive]:
        """The request's lane, the lane it was admitted in (None: shed or not held) and the
        ``receive`` to hand on (admission may have read the body)."""
        admission = self.admission
        lane = None if admission is None else lane_of(scope)
        if admission is None or lane is None:
            return None, None, receive
        entered = admission.try_enter(lane)
        if entered:
            return lane, lane, receive
        admitted, receive = await admission.admit(scope, receive, lane, late=entered is None)
        return lane, admitted, receive

    async def _shed(self, scope: Scope, lane: str, send: Send) -> None:
        """Answer a shed request 503 with ``Retry-After``."""
        retry = self.admission.limits.retry_after_s if self.admission is not None else 1
        body = overloaded_problem(lane, retry, scope.get("path"), request_id_of(scope))
        await _send_problem(send, body, (b"retry-after", str(retry).encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tag, guard, time, admit and answer one HTTP request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, declared = _scan_headers(scope["headers"])
        set_request_id(scope, rid.decode())
        limit = self.max_bytes
        source = receive  # what counting_receive reads: admission may replay a read body
        status = 500  # what the metrics record when no response starts
        started = False  # a response start went out: too late for a problem document
        exceeded = False
        seen = 0

        async def forward(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
            await send(message)

        async def app_send(message: Message) -> None:
            if not exceeded:  # the app's answer to a truncated body is dropped for the 413
                await forward(message)

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await source()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        start = time.perf_counter()
        try:
            try:
                if declared is not None and declared > limit:
                    body = _too_large(scope, limit, declared)
                    await _send_problem(forward, body, (b"connection", b"close"))
                else:
                    lane, admitted, source = await self._enter(scope, receive)
                    if admitted is None and lane is not None:
                        await self._shed(scope, lane, forward)
                    else:
                        try:
                            with contextlib.suppress(_BodyTooLarge):
                                await self.app(scope, counting_receive, app_send)
                        finally:
                            if admitted is not None and self.admission is not None:
                                self.admission.release(admitted)
                    if exceeded and not started:
                        body = _too_large(scope, limit, None)
                        await _send_problem(forward, body, (b"connection", b"close"))
            finally:
                elapsed = time.perf_counter() - start
                self.metrics.observe(_route_template(scope), scope["method"], status, elapsed)
        except Exception as exc:
            log.exception(
                "unhandled %s on %s %s", type(exc).__name__, scope.get("method"), scope.get("path")
            )
            if started:  # too late for a problem document: let the server drop the connection
                raise
            await _send_problem(forward, _internal_error(scope))
