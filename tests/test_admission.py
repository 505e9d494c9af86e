"""Admission control with priorities (issue 10, Medium 8): lower lanes shed, emergencies pass."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.admission import (
    EMERGENCY_INTAKE,
    EMERGENCY_ROUTE,
    INTAKE,
    OTHER,
    ROUTE,
    Admission,
    AdmissionLimits,
    lane_of,
    overloaded_problem,
)
from api.middleware import ApiMiddleware
from api.request_metrics import Metrics

EMERGENCIES = frozenset({"fire", "medical"})


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": b""}


def test_lanes_by_method_and_path() -> None:
    assert lane_of(_scope("GET", "/v1/route")) == ROUTE
    assert lane_of(_scope("POST", "/v1/route/batch")) == ROUTE
    assert lane_of(_scope("POST", "/v1/reports")) == INTAKE
    assert lane_of(_scope("POST", "/open311/v2/requests.json")) == INTAKE
    assert lane_of(_scope("POST", "/v1/callers/lookup")) == INTAKE
    assert lane_of(_scope("GET", "/v1/reports")) == OTHER
    assert lane_of(_scope("GET", "/v1/subscribers")) == OTHER
    assert lane_of(_scope("GET", "/readyz")) is None
    assert lane_of(_scope("GET", "/livez")) is None


@pytest.mark.anyio
async def test_only_lower_gets_of_an_overloaded_worker_are_shed_unread() -> None:
    admission = Admission(AdmissionLimits(shed_utilization=1e9), lambda: EMERGENCIES)
    admission.open_connections = lambda: 10**6  # a crowd waits
    point = b"lon=107.6&lat=-6.9"
    assert admission.shed_unread("GET", "/v1/route", point) is None  # the loop is on time
    admission.limits = replace(admission.limits, shed_lag_s=-1.0)  # now it is late
    assert admission.shed_unread("GET", "/v1/route", point) == ROUTE
    assert admission.shed_unread("GET", "/v1/route", point + b"&category=waste") == ROUTE
    assert admission.shed_unread("GET", "/v1/reports", b"limit=5") == OTHER
    assert admission.shed_unread("HEAD", "/v1/reports", b"") == OTHER
    # Never here: emergency lookups (also percent-encoded), any POST, the probes.
    assert admission.shed_unread("GET", "/v1/route", point + b"&category=fire") is None
    assert admission.shed_unread("GET", "/v1/route", b"category=%66ire&" + point) is None
    assert admission.shed_unread("POST", "/v1/reports", b"") is None
    assert admission.shed_unread("POST", "/v1/route/batch", b"") is None
    assert admission.shed_unread("POST", "/v1/layers", b"") is None
    assert admission.shed_unread("GET", "/livez", b"") is None
    assert admission.shed_unread("GET", "/readyz", b"") is None
    assert admission.shed == {**dict.fromkeys(admission.shed, 0), ROUTE: 2, OTHER: 2}


def test_cpu_demand_counts_cpu_used_and_waited_for() -> None:
    from api.admission import _cpu_demand

    used = time.process_time()
    before = _cpu_demand()
    assert before >= used  # CPU used, plus time runnable but waiting for a CPU (Linux)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn some CPU
        pass
    assert _cpu_demand() - before >= 0.05


def test_the_overloaded_problem_names_lane_and_retry() -> None:
    problem = overloaded_problem(ROUTE, 3, "/v1/route", "abc")
    assert problem["status"] == 503 and problem["type"].endswith("overloaded")
    assert (problem["lane"], problem["retry_after_s"], problem["request_id"]) == (ROUTE, 3, "abc")
    assert "emergencies are still answered" in problem["detail"]


class _Held:
    """A test app whose handlers wait until released, echoing the body they got."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def handle(self, request: Request) -> Response:
        self.entered += 1
        body = await request.body()
        await self.release.wait()
        return Response(body, status_code=201)

    def app(self, limits: AdmissionLimits) -> tuple[Any, Admission]:
        routes = [
            Route("/v1/reports", self.handle, methods=["POST"]),
            Route("/v1/route", self.handle, methods=["GET"]),
            Route("/v1/reports", self.handle, methods=["GET"]),
            Route("/readyz", self.handle, methods=["GET"]),
        ]
        admission = Admission(limits, lambda: EMERGENCIES)
        admission.loop_lag()  # the probe starts; the test loop's own CPU use must not shed
        admission.limits = replace(limits, shed_utilization=max(limits.shed_utilization, 1e9))
        app = ApiMiddleware(Starlette(routes=routes), Metrics(), 1 << 20, admission)
        return app, admission


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _report(category: str) -> bytes:
    return orjson.dumps({"category": category, "lon": 107.6, "lat": -6.9, "description": "x"})


async def _until(predicate: Any) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.mark.anyio
async def test_a_full_lane_sheds_with_retry_after_while_emergencies_pass() -> None:
    held = _Held()
    limits = AdmissionLimits(route=1, intake=1, other=1, queue_wait_s=0.2, retry_after_s=3)
    app, admission = held.app(limits)
    async with _client(app) as client:
        first = asyncio.create_task(client.post("/v1/reports", content=_report("water_pipe")))
        await _until(lambda: held.entered == 1)
        queued = asyncio.create_task(client.post("/v1/reports", content=_report("water_pipe")))
        await _until(lambda: len(admission.waiting[INTAKE]) == 1)
        over = await client.post("/v1/reports", content=_report("road_damage"))
        assert over.status_code == 503  # the queue is full too: shed at once
        assert over.headers["retry-after"] == "3"
        problem = over.json()
        assert problem["lane"] == INTAKE and "overloaded" in problem["type"]
        assert over.headers["content-type"] == "application/problem+json"

        emergency = asyncio.create_task(client.post("/v1/reports", content=_report("fire")))
        await _until(lambda: admission.in_flight[EMERGENCY_INTAKE] == 1)
        timed_out = await queued  # waited queue_wait_s for a slot, then shed
        assert timed_out.status_code == 503
        held.release.set()
        done = await emergency
        assert done.status_code == 201
        assert orjson.loads(done.content)["category"] == "fire"  # the body reached the app intact
        assert (await first).status_code == 201
    assert admission.shed[INTAKE] == 2
    assert admission.in_flight == dict.fromkeys(admission.in_flight, 0)


@pytest.mark.anyio
async def test_a_queued_request_gets_the_freed_slot() -> None:
    held = _Held()
    app, admission = held.app(AdmissionLimits(other=1, queue_wait_s=5.0))
    async with _client(app) as client:
        first = asyncio.create_task(client.get("/v1/reports"))
        await _until(lambda: held.entered == 1)
        second = asyncio.create_task(client.get("/v1/reports"))
        await _until(lambda: len(admission.waiting[OTHER]) == 1)
        held.release.set()
        assert (await first).status_code == 201
        assert (await second).status_code == 201
    assert admission.shed[OTHER] == 0
    assert admission.in_flight[OTHER] == 0


@pytest.mark.anyio
async def test_a_late_event_loop_sheds_lower_lanes_but_not_emergency_routing() -> None:
    held = _Held()
    held.release.set()
    app, admission = held.app(AdmissionLimits(shed_lag_s=0.05))
    admission.limits = replace(admission.limits, shed_lag_s=-1.0)  # any lag is too much
    admission.open_connections = lambda: 10**6  # and a crowd waits
    async with _client(app) as client:
        point = {"lon": 107.6, "lat": -6.9}
        shed = await client.get("/v1/route", params=point)
        plain = await client.get("/v1/route", params={**point, "category": "x"})
        urgent = await client.get("/v1/route", params={**point, "category": "fire"})
        intake = await client.post("/v1/reports", content=_report("medical"))
        probe = await client.get("/readyz")
    assert (shed.status_code, plain.status_code) == (503, 503)
    assert "retry-after" in shed.headers
    assert urgent.status_code == 201 and intake.status_code == 201
    assert probe.status_code == 201  # the probes are never held
    assert admission.shed[ROUTE] == 2 and admission.shed[EMERGENCY_ROUTE] == 0


@pytest.mark.anyio
async def test_the_app_knows_the_city_emergencies(demo_router: Any, tmp_path: Any) -> None:
    from api.app import create_app
    from api.settings import AppSettings

    settings = AppSettings.of(data_dir=tmp_path, admit_intake=3, _env_file=None)
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    admission: Admission = app.state.admission
    assert admission.capacity[INTAKE] == 3
    assert admission.emergency_codes() == frozenset()  # nothing loaded yet
    app.state.router = demo_router
    assert admission.emergency_codes() == {"fire", "crime", "medical", "flooding"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_emergencies_in_flight_leave_less_room_for_other_intake() -> None:
    held = _Held()
    app, admission = held.app(AdmissionLimits(intake=1, queue_wait_s=5.0))
    async with _client(app) as client:
        urgent = asyncio.create_task(client.post("/v1/reports", content=_report("fire")))
        await _until(lambda: held.entered == 1)
        assert admission.in_flight[INTAKE] == 1  # it took the intake slot: there was room
        other = asyncio.create_task(client.post("/v1/reports", content=_report("waste")))
        await _until(lambda: len(admission.waiting[INTAKE]) == 1)  # waits behind it
        second = asyncio.create_task(client.post("/v1/reports", content=_report("medical")))
        await _until(lambda: admission.in_flight[EMERGENCY_INTAKE] == 1)  # never waits
        held.release.set()
        answers = [(await task).status_code for task in (urgent, other, second)]
    assert answers == [201, 201, 201]
    assert admission.in_flight == dict.fromkeys(admission.in_flight, 0)


@pytest.mark.anyio
async def test_a_saturated_loop_thread_sheds_a_growing_share_of_lower_lanes() -> None:
    crowd = [10]
    limits = AdmissionLimits(shed_utilization=0.0, shed_connections=100)
    admission = Admission(limits, lambda: EMERGENCIES, lambda: crowd[0])
    admission.loop_lag()
    await asyncio.sleep(0.3)  # busy, but with a few connections: nothing queues, nothing shed
    assert admission.shed_fraction == 0.0
    crowd[0] = 1000
    await asyncio.sleep(0.3)  # every probe finds the process "saturated" (threshold 0)
    assert admission.shed_fraction > 0.3
    outcomes = [admission.try_enter(ROUTE) for _ in range(200)]
    assert outcomes.count(None) > 40  # shed: no slot taken
    assert admission.in_flight[ROUTE] == outcomes.count(True)
    admission.limits = replace(admission.limits, shed_utilization=1e9)
    await asyncio.sleep(0.8)  # room again: the share shrinks back to nothing
    assert admission.shed_fraction == 0.0


@pytest.mark.anyio
async def test_a_late_loop_without_a_crowd_sheds_nothing() -> None:
    admission = Admission(AdmissionLimits(shed_lag_s=-1.0), lambda: EMERGENCIES, lambda: 3)
    admission.limits = replace(admission.limits, shed_utilization=1e9)
    assert [admission.try_enter(ROUTE) for _ in range(3)] == [True, True, True]
    await asyncio.sleep(0.2)
    assert admission.try_enter(ROUTE) is True and admission.shed_fraction == 0.0
