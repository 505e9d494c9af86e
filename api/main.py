"""Entry point for ``uvicorn api.main:create_app_from_env --factory`` (and ``geo-router serve``)."""

from __future__ import annotations

import gc
import logging
import sys

from fastapi import FastAPI

from api.app import City, create_app, load_city
from api.settings import AppSettings
from geo_router.cli.supervisor import exit_with_parent
from geo_router.errors import GeoRouterError
from geo_router.intake.secrets import Secrets
from geo_router.settings import PUBLIC_WITHOUT_KEYS, is_loopback_host

#: Exit status of a refusal to serve a non-loopback host without keys (as ``geo-router serve``).
EXIT_REFUSED = 2


def create_app_from_env() -> FastAPI:
    """Build the app from ``GEO_ROUTER_*`` environment variables (one per worker).

    A bad setting, missing or broken secrets, secrets that do not open the store or a damaged
    store stop the process with one line naming the
    fix, not a traceback: every way of starting the app (``geo-router serve``, uvicorn,
    gunicorn) refuses alike.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
    try:
        settings = AppSettings.from_env()
        check_store_secrets(settings, Secrets.load(settings.secrets, settings.store))
        refusal = public_without_keys(settings)
    except GeoRouterError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        raise SystemExit(3) from None
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        raise SystemExit(EXIT_REFUSED)
    exit_with_parent()  # a worker of geo-router serve stops when its supervisor dies
    return create_app(
        settings,
        city_loader=load_city_for_serving,
        integrity_checked=True,
        wait_for_city=True,
    )


def check_store_secrets(settings: AppSettings, secrets: Secrets) -> None:
    """Refuse a damaged store or one the secrets do not open (before any worker serves).

    Raises
    ------
    StoreIntegrityError, StoreSecretsMismatchError
        One line saying what is wrong (``geo_router.store.secrets_check``).
    """
    from geo_router.store.database import Store
    from geo_router.store.secrets_check import check_for_service

    with Store.open(settings.store) as store:
        check_for_service(store.engine, secrets)


def public_without_keys(settings: AppSettings) -> str | None:
    """The refusal when the app is configured for a non-loopback host with no active key.

    The host is ``ServerSettings.host`` (``GEO_ROUTER_HOST``; ``geo-router serve`` sets it to
    its bind address). Started by uvicorn or gunicorn directly, set ``GEO_ROUTER_HOST`` to the
    address they bind; whatever it says, a caller from another machine gets 401 while no key
    has ever existed (``api.auth.Authenticator``).
    """
    host = settings.server.host
    if is_loopback_host(host):
        return None
    from geo_router.intake.secrets import secrets_for_migration
    from geo_router.store.database import Store

    cipher = secrets_for_migration(settings.secrets, settings.store)
    with Store.open(settings.store, cipher=cipher) as store:
        if store.keys.count_active() > 0:
            return None
    return PUBLIC_WITHOUT_KEYS.format(host=host)


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
