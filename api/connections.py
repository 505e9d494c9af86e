"""uvicorn's httptools protocol with a header timeout and a connection cap per client.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but has no limit on how
long a client may take to send a request's headers, nor on how many connections one client
may hold: a few hundred sockets trickling a header byte at a time (slowloris) hold as many
file descriptors and connection slots for as long as they like. This protocol, which
``geo-router serve`` hands uvicorn as ``http=``, adds both:

- a connection must deliver each request's headers within ``header_timeout_s`` of
  connecting or of the request's first byte, or it is closed;
- one client address holds at most ``max_connections_per_client`` connections (per worker
  process); a connection beyond it is closed at once. A trusted proxy
  (``GEO_ROUTER_TRUSTED_PROXIES``) is not capped: its connections carry many clients.

It also fixes how uvicorn (0.54) handles a pipelining client that disconnects: uvicorn marks
only the connection's *last parsed* request as disconnected, so the request actually being
answered writes to the closed transport and logs a ``RuntimeError`` traceback ("the handler
is closed"), hundreds under load. Here every started or queued request of the connection is
marked disconnected (``connection_lost``): its answer is dropped quietly, as for any client
that hung up.

Far above capacity it sheds before the app: a ``GET`` of a lower lane, while the worker is
overloaded (:meth:`api.admission.Admission.shed_unread`, the admission control's own signal
and counters; the served app hands its admission over with :func:`shed_with`), is answered
a ready-made ``503`` problem+json with ``Retry-After`` as soon as its headers are parsed,
with no ASGI task and no middleware: a shed costs the parse and one write. The connection
stays open for its next request (closed when the client asked for that, or when it does not
read its answers). Emergency lookups, every POST and the probes go on to the app.

Settings come from ``ServerSettings`` in the worker's environment (``GEO_ROUTER_*``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from functools import lru_cache
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.admission import Admission, overloaded_problem
from api.client_address import TrustedProxies
from api.errors import PROBLEM_MEDIA_TYPE
from api.request_ids import new_request_id
from geo_router.settings import server_settings

__all__ = ["GuardedHttpToolsProtocol", "open_connections", "shed_with"]

log = logging.getLogger("geo_router.api")


@lru_cache(maxsize=1)
def _guard() -> tuple[float, int, TrustedProxies]:
    """Header timeout, connection cap per client and trusted proxies, read once."""
    server = server_settings()
    proxies = TrustedProxies.parse(server.trusted_proxies)
    return server.header_timeout_s, server.max_connections_per_client, proxies


#: uvicorn's set of this process's open connections, once a connection was made.
_SERVED: list[set[Any]] = []


def open_connections() -> int:
    """Connections open in this worker (0 when not served by this protocol)."""
    return len(_SERVED[0]) if _SERVED else 0


#: The admission control the protocol sheds by: the served app's (none: shed nothing here).
_ADMISSION: list[Admission] = []


def shed_with(admission: Admission | None) -> None:
    """Shed unread requests by ``admission``'s overload signal (None: stop shedding here).

    The app calls this with its admission control; a process serves one app.
    """
    _ADMISSION[:] = [] if admission is None else [admission]


def _shed_head(retry_after_s: int, length: int, request_id: bytes, close: bool) -> bytes:
    """The head of a ready-made 503 (uvicorn's default headers are added by the caller)."""
    return b"".join(
        [
            b"content-type: ",
            PROBLEM_MEDIA_TYPE.encode(),
            b"\r\ncontent-length: %d\r\nretry-after: %d\r\n" % (length, retry_after_s),
            b"x-request-id: ",
            request_id,
            b"\r\nconnection: close\r\n\r\n" if close else b"\r\n\r\n",
        ]
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus a header timeout and a per-client connection cap."""

    #: Open connections per client address in this process.
    open_per_client: ClassVar[Counter[str]] = Counter()
    #: Connections refused by the cap, and closed by the header timeout, in this process.
    refused: ClassVar[int] = 0
    timed_out: ClassVar[int] = 0
    #: Requests answered 503 unread (:meth:`_answer_shed`) in this process.
    shed_unread: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s, self.cap, self.proxies = _guard()
        self._header_timer: asyncio.TimerHandle | None = None
        self._counted: str | None = None
        self._started: list[Any] = []  # this connection's request cycles handed to the app
        self._completing = False  # inside on_response_complete (see there)
        self._complete_again = False
        if not _SERVED:
            _SERVED.append(self.connections)  # the server's own set (one server per process)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection against its client's cap (or close it) and start the clock."""
        super().connection_made(transport)
        host = self.client[0] if self.client else None
        if host is not None and not self.proxies.trusts(host):
            if self.open_per_client[host] >= self.cap:
                type(self).refused += 1
                transport.abort()
                return
            self.open_per_client[host] += 1
            self._counted = host
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Uncount the connection; stop its clock; every request of it is disconnected."""
        self._cancel_header_timer()
        queued = [cycle for cycle, _app in self.pipeline]
        self.pipeline.clear()
        for cycle in (*self._started, *queued):
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self._started.clear()
        if self._counted is not None:
            count = self.open_per_client[self._counted] - 1
            if count > 0:
                self.open_per_client[self._counted] = count
            else:
                del self.open_per_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        """Shed the request unread when overloaded; else remember the cycle (see
        ``connection_lost``) and start it as uvicorn does."""
        if _ADMISSION:
            admission = _ADMISSION[0]
            scope = cycle.scope
            lane = admission.shed_unread(scope["method"], scope["path"], scope["query_string"])
            if lane is not None:
                self._answer_shed(cycle, lane, admission.limits.retry_after_s)
                return
        self._started = [c for c in self._started if not c.response_complete]
        self._started.append(cycle)
        super()._start_asgi_task(cycle, app)

    def _answer_shed(self, cycle: Any, lane: str, retry_after_s: int) -> None:
        """Answer ``cycle`` a ready-made 503 problem+json, without the app."""
        type(self).shed_unread += 1
        if self.transport.is_closing():  # the client is gone: nothing to answer
            cycle.response_complete = True
            return
        scope = cycle.scope
        request_id = new_request_id()
        body = orjson.dumps(
            overloaded_problem(lane, retry_after_s, scope["path"], request_id.decode())
        )
        # A client that does not read its answers gets no more of them buffered here.
        close = not cycle.keep_alive or self.flow.write_paused
        parts = [STATUS_LINE[503]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        parts.append(_shed_head(retry_after_s, len(body), request_id, close))
        if scope["method"] != "HEAD":
            parts.append(body)
        self.transport.write(b"".join(parts))
        cycle.response_complete = True  # its body, if any, is skipped by the parser callbacks
        if close:
            self.transport.close()
        else:
            self.on_response_complete()  # the next pipelined request, or the keep-alive clock

    def on_message_begin(self) -> None:
        """A request starts: its headers must be complete within the timeout, and the idle
        (keep-alive) clock stops: a shed answer may have started it while this request was
        already in the same read."""
        super().on_message_begin()
        self._unset_keepalive_if_required()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        """The headers are in: the clock stops."""
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """A response went out: idle time is the keep-alive timeout's, not the header's.

        uvicorn starts the next pipelined request from here; a shed one completes at once,
        calling this again. Those calls are looped here, not nested: a client pipelining
        thousands of requests behind a slow one must not exhaust the stack."""
        self._cancel_header_timer()
        if self._completing:
            self._complete_again = True
            return
        self._completing = True
        try:
            self._complete_again = True
            while self._complete_again:
                self._complete_again = False
                super().on_response_complete()
        finally:
            self._completing = False

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: its headers came in time
        if not self.transport.is_closing():
            type(self).timed_out += 1
            self.transport.close()
