"""Entry point for ``uvicorn api.main:create_app_from_env --factory`` (and ``geo-router serve``)."""

from __future__ import annotations

import gc
import logging
import sys

from fastapi import FastAPI

from api.app import City, create_app, load_city
from api.settings import AppSettings
from geo_router.errors import ConfigurationError
from geo_router.intake.secrets import Secrets


def create_app_from_env() -> FastAPI:
    """Build the app from ``GEO_ROUTER_*`` environment variables (one per worker).

    A bad setting or missing or broken secrets stop the process with one line naming the
    fix, not a traceback: every way of starting the app (``geo-router serve``, uvicorn,
    gunicorn) refuses alike.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
    try:
        settings = AppSettings.from_env()
        Secrets.load(settings.secrets, settings.store)
    except ConfigurationError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        raise SystemExit(3) from None
    return create_app(settings, city_loader=load_city_for_serving)


def load_city_for_serving(settings: AppSettings) -> City:
    """:func:`api.app.load_city`, then the loaded city is taken out of the cyclic GC's sight.

    The city is hundreds of thousands of objects that live as long as the process; a full
    collection walks them all (about 90 ms measured on the demo city), stalling every
    request in flight. Frozen, they are never walked again; a swapped-out city is still freed
    by reference counting.
    """
    loaded = load_city(settings.routing)
    gc.collect()
    gc.freeze()
    return loaded
