"""Admission control with priorities: emergencies are answered, lower classes are shed.

Every request except the health probes belongs to one *lane*:

==================  ================================================================  ========
lane                requests                                                          shed?
==================  ================================================================  ========
emergency_route     ``/v1/route*`` whose ``category`` is an emergency category         never
emergency_intake    ``POST /v1/reports`` / Open311 POST of an emergency category       never
route               every other ``/v1/route*``                                         503
intake              every other ``POST /v1/reports``, Open311 POST, caller lookups     503
other               everything else (lists, registry, layers, map, metrics, docs)      503
==================  ================================================================  ========

A lower lane admits at most ``limit`` requests at once (its emergencies in flight count
against that limit: they use the same store and threads, so under an emergency load the
other intake is shed first) and lets at most as many again wait
(``queue_wait_s`` at most) for a slot; beyond that it is answered ``503`` problem+json with
``Retry-After`` at once, without reaching the app. CPU-bound work on the event loop (routing
a point) never shows as requests in flight, so the worker is watched too, while it holds
more than ``shed_connections`` open connections (counted by ``api.connections``, the
protocol of ``geo-router serve``; requests then wait unseen in the kernel's socket buffers):
while the loop runs late (scheduling lag over ``shed_lag_s``) every lower-lane request is
shed, and while the process uses, or its loop thread waits for, more than
``shed_utilization`` of a CPU (its threads share one GIL; a worker sharing its core with
other processes gets only part of it) a growing share of them is. The emergency lanes
have no limit: they are never refused here. Far above capacity even that is too late: the
served protocol (:mod:`api.connections`) asks :meth:`Admission.shed_unread` as soon as a
request's headers are parsed, and a lower-lane ``GET`` of an overloaded worker is answered
there, by the same signal and counters, without starting the app at all.

The hot path pays for a few string compares and two counters. Whether a request is an
emergency is decided only when its lane is full or the loop is late (so an emergency is
never shed): for ``GET /v1/route`` from its query (:func:`api.route_input.parse_query`, the
route parser's own), for a POST from its body (read here, at most ``max_peek`` bytes, and
handed on to the app unchanged). The category codes come from the loaded city
(``emergency = true`` in its profile).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import Message, Receive, Scope

from api.errors import PROBLEM_TYPE_BASE, problem_body
from api.route_input import parse_query

__all__ = [
    "EMERGENCY_INTAKE",
    "EMERGENCY_ROUTE",
    "INTAKE",
    "LANES",
    "OTHER",
    "ROUTE",
    "Admission",
    "AdmissionLimits",
    "lane_for",
    "lane_of",
    "overloaded_problem",
]

EMERGENCY_ROUTE = "emergency_route"
EMERGENCY_INTAKE = "emergency_intake"
ROUTE = "route"
INTAKE = "intake"
OTHER = "other"
#: Every lane, highest priority first.
LANES = (EMERGENCY_ROUTE, EMERGENCY_INTAKE, ROUTE, INTAKE, OTHER)
#: The lane an emergency of each lower lane moves to.
_ESCALATED = {ROUTE: EMERGENCY_ROUTE, INTAKE: EMERGENCY_INTAKE}

#: Never admitted or shed: the probes must tell the truth under load.
_EXEMPT = frozenset({"/livez", "/readyz"})
_INTAKE_POSTS = frozenset({"/v1/reports", "/v1/callers/lookup"})
_OPEN311_POST = "/open311/v2/requests."
#: The methods the protocol may shed unread: a POST's category is in its body.
_BODILESS = frozenset({"GET", "HEAD"})
#: How often the loop-lag probe runs (seconds).
_PROBE_EVERY_S = 0.05
#: How fast the shed share follows saturation (per probe), and its ceiling.
_SHED_STEP = 0.25
_MAX_SHED = 0.95


def _cpu_demand() -> float:
    """Seconds of CPU this process used plus those its calling thread (the event loop) spent
    runnable but waiting for a CPU (Linux ``schedstat``): a worker sharing its core with
    other processes wants the CPU all the time while it gets only its share."""
    used = time.process_time()
    try:
        with open("/proc/thread-self/schedstat", "rb") as stats:
            return used + int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return used


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The lower lanes' bounds (``ApiSettings``: ``GEO_ROUTER_ADMIT_*``)."""

    route: int = 64
    intake: int = 8
    other: int = 8
    queue_wait_s: float = 1.0
    shed_lag_s: float = 0.2
    shed_utilization: float = 0.75  # a worker sharing its core never shows a full one
    shed_connections: int = 96
    retry_after_s: int = 1
    max_peek: int = 64 * 1024


def lane_for(method: str, path: str) -> str | None:
    """The lane of a request by method and path alone (None: the probes, never held)."""
    if path.startswith("/v1/route"):
        return ROUTE
    if method == "POST" and (path in _INTAKE_POSTS or path.startswith(_OPEN311_POST)):
        return INTAKE
    return None if path in _EXEMPT else OTHER


def lane_of(scope: Scope) -> str | None:
    """The lane of an ASGI request (:func:`lane_for` its method and path)."""
    return lane_for(scope["method"], scope["path"])


def overloaded_problem(
    lane: str, retry_after_s: int, instance: str | None, request_id: str | None
) -> dict[str, Any]:
    """The 503 problem of a shed request, naming its lane (the app's and the protocol's)."""
    return problem_body(
        503,
        f"the service is overloaded and sheds {lane} requests first; retry after "
        f"{retry_after_s} s (emergencies are still answered)",
        type_uri=PROBLEM_TYPE_BASE + "overloaded",
        instance=instance,
        request_id=request_id,
        extra={"lane": lane, "retry_after_s": retry_after_s},
    )


def _body_category(scope: Scope, body: bytes) -> Any:
    """The category a POST body names: JSON ``category`` (also in a Feature's properties)
    or an Open311 form's ``service_code``; None when it names none or does not parse."""
    if scope["path"].startswith(_OPEN311_POST):
        codes = parse_qs(body.decode("latin-1"), max_num_fields=64).get("service_code")
        return codes[-1] if codes else None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    props = data.get("properties")
    fallback = props.get("category") if isinstance(props, dict) else None
    return data.get("category", fallback)


async def _read_body(receive: Receive, max_peek: int) -> tuple[list[Message], bytes]:
    """The body's messages as received (to hand on) and its bytes (up to ``max_peek``)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while size <= max_peek:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return messages, b"".join(chunks)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` back first, then reads on."""
    pending = deque(messages)

    async def replay() -> Message:
        return pending.popleft() if pending else await receive()

    return replay


class Admission:
    """Admits, queues or sheds requests by lane (see the module docstring).

    Parameters
    ----------
    limits
        The lower lanes' bounds.
    emergency_codes
        The loaded city's emergency category codes (empty while it loads).
    """

    def __init__(
        self,
        limits: AdmissionLimits,
        emergency_codes: Callable[[], frozenset[str]],
        open_connections: Callable[[], int] = lambda: 0,
    ) -> None:
        self.limits = limits
        self.emergency_codes = emergency_codes
        self.open_connections = open_connections
        self.capacity = {ROUTE: limits.route, INTAKE: limits.intake, OTHER: limits.other}
        self.in_flight = dict.fromkeys(LANES, 0)
        self.waiting: dict[str, deque[asyncio.Future[None]]] = {
            lane: deque() for lane in self.capacity
        }
        self.shed = dict.fromkeys(LANES, 0)
        self._due = 0.0  # when the lag probe should run next (monotonic); 0: not started
        self._lag = 0.0
        self._cpu = 0.0  # the process's CPU time at the last probe
        #: The share of lower-lane requests shed while the process is saturated.
        self.shed_fraction = 0.0

    # --- the loop-lag probe ---------------------------------------------------------------

    def _probe(self) -> None:
        now, cpu = time.monotonic(), _cpu_demand()
        elapsed = now - self._due + _PROBE_EVERY_S
        self._lag = max(0.0, now - self._due)
        utilization = (cpu - self._cpu) / elapsed if elapsed > 0 else 0.0
        self._cpu = cpu
        self._due = now + _PROBE_EVERY_S
        # Many connections each holding a request queue up in the kernel, not on the loop:
        # the lag stays short while every request waits its turn. A process busy all the time
        # (all threads: they share one GIL) with a crowd of connections is the sign (busy with
        # a few closed-loop clients is just full use: their requests do not queue); the shed
        # share then grows, and shrinks once there is room again.
        crowded = self.open_connections() >= self.limits.shed_connections
        busy = utilization >= self.limits.shed_utilization
        if crowded and (busy or self._lag >= self.limits.shed_lag_s):
            self.shed_fraction = min(_MAX_SHED, self.shed_fraction + _SHED_STEP)
        else:
            self.shed_fraction = max(0.0, self.shed_fraction - _SHED_STEP / 2)
        asyncio.get_running_loop().call_later(_PROBE_EVERY_S, self._probe)

    def late(self) -> bool:
        """Whether to shed a lower-lane request now: the loop lags with a crowd of
        connections waiting, or it is saturated and this request falls in the shed share.

        Without a crowd a late loop is one slow request or a busy neighbour (a test's own
        thread, another process), not callers queueing: nothing is shed for it."""
        if (
            self.loop_lag() >= self.limits.shed_lag_s
            and self.open_connections() >= self.limits.shed_connections
        ):
            return True
        return self.shed_fraction > 0.0 and random.random() < self.shed_fraction

    def loop_lag(self) -> float:
        """How late the event loop runs its callbacks now (seconds); starts the probe."""
        now = time.monotonic()
        if self._due == 0.0:  # the first request: start the probe
            self._due, self._cpu = now + _PROBE_EVERY_S, _cpu_demand()
            asyncio.get_running_loop().call_later(_PROBE_EVERY_S, self._probe)
            return 0.0
        return max(self._lag, now - self._due)

    def is_emergency(self, category: Any) -> bool:
        """Whether ``category`` (as a request names it) is one of the city's emergencies."""
        return isinstance(category, str) and category in self.emergency_codes()

    def shed_unread(self, method: str, path: str, query: bytes) -> str | None:
        """The lane in which to shed a request before it reaches the app (None: hand it on).

        For the connection protocol (:mod:`api.connections`), which answers a ready-made
        503 without starting the app when this names a lane: far above capacity even a
        request shed by the middleware costs a task and the ASGI stack, enough to saturate a
        worker. Only a ``GET``/``HEAD`` is shed here, and only while the worker is
        overloaded (:meth:`late`, the middleware's own signal); a routing lookup naming an
        emergency category never is. A POST's category is in its body, so every POST goes
        on to the middleware, which reads it. Full lanes are left to the middleware's queue.
        """
        if method not in _BODILESS:
            return None
        lane = lane_for(method, path)
        if lane is None or not self.late():
            return None
        if lane == ROUTE and self.is_emergency(parse_query(query).get("category")):
            return None
        self.shed[lane] += 1
        return lane

    # --- admission --------------------------------------------------------------------------

    def _busy(self, lane: str) -> int:
        """Slots of ``lane`` taken, counting its emergencies: they share its resources (the
        store's writes, the thread pool), so emergencies in flight leave less room for it."""
        escalated = _ESCALATED.get(lane)
        own = self.in_flight[lane]
        return own if escalated is None else own + self.in_flight[escalated]

    def try_enter(self, lane: str) -> bool | None:
        """Take a slot of ``lane`` at once: True when taken, False when the lane is full,
        None when the request is to be shed (:meth:`late`)."""
        if self.late():
            return None
        if self._busy(lane) < self.capacity[lane]:
            self.in_flight[lane] += 1
            return True
        return False

    def leave(self, lane: str) -> None:
        """Give the slot back: to the first request waiting for it, or free it."""
        queue = self.waiting.get(lane)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: in_flight stays
                return
        self.in_flight[lane] -= 1

    async def admit(
        self, scope: Scope, receive: Receive, lane: str, late: bool
    ) -> tuple[str | None, Receive]:
        """The lane the request runs in (None: shed) and the ``receive`` to hand on.

        Called when :meth:`try_enter` did not admit: an emergency escalates to its own lane;
        any other request is shed when ``late``, else waits for a slot (bounded).
        """
        category, receive = await self._category(scope, receive, lane)
        if self.is_emergency(category):
            escalated = _ESCALATED[lane]  # only escalating lanes read a category
            self.in_flight[escalated] += 1
            return escalated, receive
        if not late and await self._wait_for_slot(lane):
            return lane, receive
        self.shed[lane] += 1
        return None, receive

    async def _category(self, scope: Scope, receive: Receive, lane: str) -> tuple[Any, Receive]:
        """The request's category (None when it names none) and the ``receive`` to use."""
        if lane not in _ESCALATED:
            return None, receive
        if scope["method"] == "GET":
            return parse_query(scope["query_string"]).get("category"), receive
        messages, body = await _read_body(receive, self.limits.max_peek)
        return _body_category(scope, body), _replaying(messages, receive)

    async def _wait_for_slot(self, lane: str) -> bool:
        """Wait (bounded in count and time) for a slot of ``lane``; False: shed it."""
        queue = self.waiting[lane]
        if len(queue) >= self.capacity[lane]:
            return False
        if self._busy(lane) < self.capacity[lane]:
            self.in_flight[lane] += 1
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.limits.queue_wait_s)
        except BaseException as exc:  # timed out, or the client went away (cancelled)
            if waiter.done() and not waiter.cancelled():  # the slot came meanwhile
                if isinstance(exc, TimeoutError):
                    return True
                self.leave(lane)  # cancelled: pass the slot on
                raise
            waiter.cancel()
            with contextlib.suppress(ValueError):
                queue.remove(waiter)
            if isinstance(exc, TimeoutError):
                return False
            raise
        return True

    def release(self, lane: str) -> None:
        """End a request admitted in ``lane`` (any lane, emergencies included)."""
        if lane in self.capacity:
            self.leave(lane)
            return
        self.in_flight[lane] -= 1
        lower = next((low for low, high in _ESCALATED.items() if high == lane), None)
        if lower is not None and self._busy(lower) < self.capacity[lower]:
            self._wake(lower)  # the emergency's slot goes to a waiting lower request

    def _wake(self, lane: str) -> None:
        """Admit the first request waiting in ``lane`` into a free slot."""
        queue = self.waiting[lane]
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                self.in_flight[lane] += 1
                waiter.set_result(None)
                return
