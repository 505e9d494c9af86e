"""Prometheus metrics (``GET /metrics``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from api.deps import get_metrics
from api.request_metrics import Metrics

router = APIRouter(tags=["service"])


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics: requests, latencies, layer versions",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(metrics: Annotated[Metrics, Depends(get_metrics)]) -> Response:
    """The service's metrics in the Prometheus text format (summed over every worker)."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
