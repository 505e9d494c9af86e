"""Liveness and readiness probes (public).

``/readyz`` says ``degraded`` (still 200) while the database does not answer or the journal
holds records waiting for it: the instance keeps routing from memory and journals
emergencies, so a load balancer must keep it in rotation; operators alert on the status
field, not the code. It is 503 only while the city is not loaded, or when the database does
not answer and no journal can take emergencies either.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.deps import router_or_503
from api.errors import NotReadyError
from api.serialize import json_response

router = APIRouter(tags=["service"])


class Live(BaseModel):
    """The process is alive."""

    status: str


class Ready(BaseModel):
    """The service is ready (or degraded: see ``problems``): layers loaded, their versions."""

    status: str
    store: str
    journal_pending: int
    problems: list[str]
    city: str
    layers: dict[str, str]
    facilities: dict[str, str]
    loaded_at: Any = None


@router.get(
    "/livez",
    operation_id="livez",
    summary="Liveness: 200 while the process lives",
    responses={200: {"model": Live}},
)
async def livez() -> Response:
    """Answer 200 as long as the process runs (even while the city loads)."""
    return json_response({"status": "alive"})


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness: 503 until the layers are loaded, then ready or degraded",
    responses={200: {"model": Ready}},
)
async def readyz(request: Request) -> Response:
    """200 with layer versions once the city is loaded: ``ready``, or ``degraded`` while the
    database does not answer or journaled records wait for it (emergencies still taken)."""
    city = router_or_503(request)
    state = request.app.state
    store = state.store
    store_ok = store is None or await run_in_threadpool(store.ping)
    journal = state.journal
    pending = 0 if journal is None else await run_in_threadpool(journal.pending_count)
    if not store_ok and journal is None:
        raise NotReadyError("the database does not answer and no journal can take emergencies")
    problems = []
    if not store_ok:
        problems.append("the database does not answer: emergencies are journaled")
    if pending:
        problems.append(f"{pending} journaled record(s) wait for the database")
    if state.journal_error:
        problems.append(f"no journal: {state.journal_error}")
    snap = city.snapshot
    return json_response(
        {
            "status": "degraded" if problems else "ready",
            "store": "ok" if store_ok else "unavailable",
            "journal_pending": pending,
            "problems": problems,
            "city": str(getattr(snap.profile, "name", "")),
            "layers": {name: str(layer.version) for name, layer in snap.layers.items()},
            "facilities": {name: str(fs.version) for name, fs in snap.facilities.items()},
            "loaded_at": getattr(snap, "loaded_at", None),
        }
    )
