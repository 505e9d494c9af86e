"""Entry point for ``uvicorn api.main:create_app_from_env --factory`` (and ``geo-router serve``)."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api.app import create_app
from api.malloc_tuning import tune_malloc
from geo_router.settings import Settings


def create_app_from_env() -> FastAPI:
    """Build the app from ``GEO_ROUTER_*`` environment variables (one per worker)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
    tune_malloc()  # batches route in worker threads: keep their memory mapped between them
    return create_app(Settings())
