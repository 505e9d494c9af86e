"""The FastAPI application: lifespan (store, secrets, city in the background), routers.

``create_app(settings)`` opens the store and loads the secrets before serving; the city
(``Router`` + geocoder) loads in a background thread so ``/livez`` answers at once while
``/readyz`` stays 503 until the layers are in. A served process (``create_app_from_env``)
waits for the city in its startup instead, so its server accepts only once it is ready.
The app is built from an ``AppSettings``; each step is handed the part it needs (routing,
store, secrets, server, api).

The local journal (``geo_router.journal``) opens beside the store: emergencies taken while
the database is unavailable wait there, and a background thread (``ReplayLoop``) replays
them into the store at start and whenever the database answers again. The audit trail
keeps the records its log cannot take there too (kind ``"audit"``): the journal opens
first, the audit service registers its replayer, then the replay thread starts.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

import geo_router
from api import schemas
from api.admission import Admission, AdmissionLimits
from api.auth import Authenticator
from api.client_address import TrustedProxies
from api.connections import open_connections, shed_with
from api.deps import report_service_of
from api.errors import install_error_handlers
from api.middleware import ApiMiddleware
from api.request_metrics import Metrics
from api.routers import (
    callers,
    collections,
    docs,
    health,
    info,
    layers,
    mapview,
    metrics,
    open311,
    reports,
    route,
    subscribers,
)
from api.serialize import ORJSONResponse
from api.settings import AppSettings
from geo_router.settings import RoutingSettings

if TYPE_CHECKING:
    from geo_router.city.router import Router
    from geo_router.intake.audit import AuditService
    from geo_router.intake.geocode import Geocoder
    from geo_router.intake.secrets import Secrets
    from geo_router.journal import Journal
    from geo_router.store.database import Store
    from geo_router.store.serving_lock import ServingLock

__all__ = ["OPENAPI_TAGS", "create_app", "load_city", "open_secrets", "open_store"]

log = logging.getLogger("geo_router.api")

#: The city: a router, and a geocoder when the city has address points.
City = tuple["Router", "Geocoder | None"]
#: Loads the city for the app's settings (tests inject slow or fake ones).
CityLoader = Callable[[AppSettings], City]
#: Opens the store for the app's settings.
StoreOpener = Callable[[AppSettings], "Store"]
#: Loads the secrets for the app's settings.
SecretsLoader = Callable[[AppSettings], "Secrets"]

OPENAPI_TAGS = [
    {"name": "routing", "description": "Which zones hold a location, who responds."},
    {"name": "collections", "description": "OGC API - Features read access to layers."},
    {"name": "subscribers", "description": "The caller registry."},
    {"name": "callers", "description": "Who is calling: the call-taker's lookup."},
    {"name": "reports", "description": "Report intake."},
    {"name": "layers", "description": "Versions of the zone layers, for planners."},
    {"name": "open311", "description": "Open311 GeoReport v2."},
    {"name": "service", "description": "Service information, health and metrics."},
    {"name": "map", "description": "The call-taker map page."},
]


def load_city(settings: RoutingSettings) -> City:
    """Build the ``Router`` from ``settings.city`` and the geocoder (None without addresses)."""
    from geo_router.city.router import Router

    router = Router.from_profile(settings.city, tolerance_m=settings.boundary_tolerance_m)
    geocoder = None
    if getattr(router.snapshot.profile, "address_points", None) is not None:
        from geo_router.intake.geocode import Geocoder

        geocoder = Geocoder.from_profile(router.snapshot.profile)
    return router, geocoder


def _load_city(settings: AppSettings) -> City:
    return load_city(settings.routing)


def open_store(settings: AppSettings) -> Store:
    """Open and migrate the database store (with the secrets: a migration may encrypt)."""
    from geo_router.intake.secrets import secrets_for_migration
    from geo_router.store.database import Store

    # Never generated here: the secrets are checked against the store after it is open.
    return Store.open(
        settings.store, cipher=secrets_for_migration(settings.secrets, settings.store)
    )


def open_audit(settings: AppSettings, store: Store, journal: Journal | None) -> AuditService:
    """The audit trail over ``store``, keeping what its log cannot take in ``journal`` (kind
    ``"audit"``, chained by the replay loop); without a journal such records are lost
    (logged)."""
    from geo_router.intake.audit import AuditService

    if journal is None:
        log.error("no journal: audit records are lost while the audit log cannot be written")
    return AuditService.for_store(store, journal=journal)


def open_secrets(settings: AppSettings) -> Secrets:
    """Load the pepper and encryption key."""
    from geo_router.intake.secrets import Secrets

    return Secrets.load(settings.secrets, settings.store)


def _snapshot_versions(router: Router) -> tuple[dict[str, str], dict[str, str]]:
    """Layer and facility versions of the router's current snapshot."""
    snap = router.snapshot
    layers = {name: str(layer.version) for name, layer in snap.layers.items()}
    facilities = {name: str(fs.version) for name, fs in snap.facilities.items()}
    return layers, facilities


def seed_layer_versions(store: Store | None, router: Router) -> None:
    """Store the profile's layer files as versions (``planning.seeding``): version 1 at
    first start, a staged version for a file changed on disk. Never stops the start."""
    engine = getattr(store, "engine", None)  # stand-in stores have none
    if engine is None:
        return
    from geo_router.planning.seeding import seed_from_profile
    from geo_router.planning.versions import LayerVersions
    from geo_router.store.layer_versions_repo import LayerVersionsRepo

    try:
        outcome = seed_from_profile(
            LayerVersions(LayerVersionsRepo(engine), router.snapshot.profile)
        )
    except Exception:  # the city is served from its files either way
        log.exception("storing the profile's layer files as versions failed")
        return
    changed = {name: what for name, what in outcome.items() if what != "unchanged"}
    if changed:
        log.info("layer versions from the city profile: %s", changed)


def _load_in_background(app: FastAPI, loader: CityLoader) -> threading.Thread:
    """Start the thread that loads the city and flips readiness."""
    state = app.state
    city = state.settings.routing.city

    def run() -> None:
        try:
            router, geocoder = loader(state.settings)
        except Exception as exc:  # reported by /readyz; the process lives on
            log.exception("loading the city %s failed", city)
            state.load_error = f"{type(exc).__name__}: {exc}"
            return
        seed_layer_versions(state.store, router)  # before ready: uploads compare against it
        state.geocoder = geocoder
        state.router = router  # set last: readiness is "router is not None"
        state.metrics.set_versions(*_snapshot_versions(router))
        state.ready_event.set()
        log.info("city %s loaded; ready", city)

    thread = threading.Thread(target=run, name="geo-router-city-loader", daemon=True)
    thread.start()
    return thread


def _announce_mode(app: FastAPI) -> None:
    """Say at startup whether the service runs open (no key ever, loopback) or protected."""
    host = app.state.settings.server.host
    auth: Authenticator = app.state.auth
    if auth.open_mode():
        log.warning(
            "no API keys: running OPEN on loopback %s (every local caller acts as admin; "
            "callers from other machines get 401); create a key with 'geo-router keys create' "
            "to protect the service",
            host,
        )
    elif not auth.keyed():
        log.warning("no API keys and bound to %s: every protected endpoint answers 401", host)
    elif auth.keys.count_active() == 0:
        log.warning(
            "every API key is revoked: every protected endpoint answers 401 until one is "
            "created with 'geo-router keys create'"
        )


def _start_journal(app: FastAPI) -> None:
    """Open the journal and register the report replayer (the audit service registers its
    own); :func:`_start_replay_loop` starts replaying once every replayer is registered.

    Without a journal (its file cannot be opened) the service still runs, but an emergency
    during a database outage then gets 503 like any report, and audit records the log
    cannot take are lost; startup logs it and ``/readyz`` says so.
    """
    from geo_router.errors import JournalUnavailableError
    from geo_router.intake.reports.pending import REPORT_KIND, needs_locating, report_replayer
    from geo_router.journal import Journal
    from geo_router.store.reports_repo import Report, ReportsRepo

    state = app.state
    settings: AppSettings = state.settings
    try:
        journal = Journal.open(settings.store, state.secrets)
    except JournalUnavailableError as exc:
        log.error("%s: emergencies cannot be journaled during a database outage", exc.message)
        state.journal_error = exc.message
        return
    engine = getattr(state.store, "engine", None)
    if engine is not None:

        def complete(report: Report) -> Report:  # locates a report taken unlocated
            if not needs_locating(report):
                return report
            return report_service_of(app).locate_journaled(report)

        repo = ReportsRepo(engine, state.secrets)  # a registered caller's home is sealed
        journal.register(REPORT_KIND, report_replayer(repo, complete))
    state.journal = journal


def _start_replay_loop(app: FastAPI) -> None:
    """Start the thread replaying the journal (at once: a restart's leftovers), if any."""
    from geo_router.journal import ReplayLoop

    state = app.state
    if state.journal is None:
        return
    interval = state.settings.store.journal_replay_interval_s
    state.replay_loop = ReplayLoop(state.journal, interval).start()


def _stop_journal(app: FastAPI) -> None:
    """Stop the replay thread and close the journal."""
    loop = getattr(app.state, "replay_loop", None)
    if loop is not None:
        loop.stop()
    journal = getattr(app.state, "journal", None)
    if journal is not None:
        journal.close()


def _claim_store_city(settings: AppSettings, store: Store) -> str | None:
    """Log which store serves and claim it for the city served; the refusal, if refused.

    A store created for another city is refused with one logged line (no traceback): the
    service then never becomes ready and does not expose that store.
    """
    from geo_router.errors import ProfileError, StoreCityMismatchError
    from geo_router.store.city_record import claim_city_profile
    from geo_router.store.database import describe_store

    engine = getattr(store, "engine", None)
    log.info("store: %s", describe_store(settings.store if engine is None else engine))
    if engine is None:  # an injected stand-in without a database
        return None
    try:
        claim = claim_city_profile(engine, settings.routing.city)
    except StoreCityMismatchError as exc:
        log.error("%s", exc.message)
        return exc.message
    except ProfileError as exc:  # the city loader reports it on /readyz
        log.warning("the city could not be recorded in the store: %s", exc.message)
        return None
    if claim.note:
        log.info("%s", claim.note)
    return None


def _open_store_or_refusal(
    settings: AppSettings, store_opener: StoreOpener
) -> tuple[Store | None, str | None]:
    """The opened store, or (None, why) when its file is too damaged to open or a migration
    refuses it (logged once)."""
    from geo_router.errors import ConfigurationError

    try:
        return store_opener(settings), None
    except ConfigurationError as exc:
        log.error("%s", exc.message)
        return None, exc.message


def _check_store_secrets(
    settings: AppSettings, store: Store, secrets_loader: SecretsLoader, integrity: bool
) -> tuple[Secrets | None, ServingLock | None, str | None]:
    """Load the secrets and check the store with them: (secrets, lock, None) or a refusal.

    The process takes its share of the serving lock (a restore or key rotation running now
    refuses the start), the store's file is checked for damage and the secrets against its
    check values (``geo_router.store.secrets_check``). A refusal is logged in one line and
    keeps the service from ever becoming ready, like a store of another city.
    """
    from geo_router.errors import ConfigurationError
    from geo_router.store.secrets_check import check_for_service
    from geo_router.store.serving_lock import ServingLock

    engine = getattr(store, "engine", None)
    lock = None
    try:
        secrets = secrets_loader(settings)
        if engine is not None:  # an injected stand-in without a database has nothing to check
            lock = ServingLock(engine)
            check_for_service(engine, secrets, integrity=integrity)
    except ConfigurationError as exc:
        if lock is not None:
            lock.release()
        log.error("%s", exc.message)
        return None, None, exc.message
    return secrets, lock, None


def _make_lifespan(
    loader: CityLoader,
    store_opener: StoreOpener,
    secrets_loader: SecretsLoader,
    wait_for_city: bool,
    integrity_check: bool = True,
) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings: AppSettings = app.state.settings
        store, refused = await run_in_threadpool(_open_store_or_refusal, settings, store_opener)
        if store is not None:
            refused = await run_in_threadpool(_claim_store_city, settings, store)
        secrets = lock = None
        if store is not None and refused is None:
            secrets, lock, refused = await run_in_threadpool(
                _check_store_secrets, settings, store, secrets_loader, integrity_check
            )
        if store is not None and refused is None:
            app.state.store = store
            app.state.secrets = secrets
            await run_in_threadpool(_start_journal, app)
            app.state.audit = await run_in_threadpool(
                open_audit, settings, store, app.state.journal
            )
            app.state.auth = Authenticator(store.keys, settings.server.host, audit=app.state.audit)
            await run_in_threadpool(_start_replay_loop, app)
            warm = getattr(store.keys, "warm", None)  # stand-in stores may have no cache
            if warm is not None:  # so that every key verifies during a database outage
                await run_in_threadpool(warm)
            await run_in_threadpool(_announce_mode, app)
            app.state.loader_thread = _load_in_background(app, loader)
            if wait_for_city:  # the server accepts only after this: no request meets "loading"
                await run_in_threadpool(app.state.loader_thread.join)
        else:
            # Not ready, ever: /readyz answers 503 with the refusal; the store stays unused.
            app.state.load_error = refused
        try:
            yield
        finally:
            if lock is not None:
                lock.release()
            app.state.metrics.close()
            if app.state.audit is not None:  # before the journal closes: it may take records
                await run_in_threadpool(app.state.audit.close)
            await run_in_threadpool(_stop_journal, app)
            close = getattr(store, "close", None)
            if close is not None:
                close()

    return lifespan


def admission_for(app: FastAPI) -> Admission:
    """The app's admission control: its ``ApiSettings`` limits, its city's emergencies."""
    api = app.state.settings.api
    limits = AdmissionLimits(
        route=api.admit_route,
        intake=api.admit_intake,
        other=api.admit_other,
        queue_wait_s=api.admit_queue_wait_ms / 1000,
        shed_lag_s=api.shed_lag_ms / 1000,
        shed_utilization=api.shed_cpu_percent / 100,
        shed_connections=api.shed_connections,
        retry_after_s=api.retry_after_s,
    )
    cache: dict[int, frozenset[str]] = {}

    def emergency_codes() -> frozenset[str]:
        router = app.state.router
        if router is None:
            return frozenset()
        snapshot = router.snapshot
        codes = cache.get(id(snapshot))
        if codes is None:  # a new snapshot (first use, or a reload): compute it once
            cache.clear()
            codes = frozenset(c for c, cat in snapshot.categories.items() if cat.emergency)
            cache[id(snapshot)] = codes
        return codes

    return Admission(limits, emergency_codes, open_connections)


def _custom_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """OpenAPI with the request-body schemas that handlers parse themselves."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            components = doc.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in schemas.extra_component_schemas().items():
                components.setdefault(name, schema)
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi


def _telemetry_off() -> dict[str, Any]:
    """``FastAPI(telemetry=...)`` turning its native OpenTelemetry off, when nothing uses it.

    FastAPI 0.16x instruments every request natively and, to know whether to, looks up
    ``os.environ`` and the global OpenTelemetry providers on every request: 3.6 µs of each
    ``GET /v1/route`` (benchmarks/README.md) with OpenTelemetry configured nowhere. This
    service configures none itself. OpenTelemetry counts as configured when the environment
    has an ``OTEL_*`` or ``FASTAPI_OTEL_*`` variable (what ``opentelemetry-instrument`` and
    auto-configuration read) or a tracer provider was set before the app is built; then
    FastAPI's defaults stay. FastAPI without the ``telemetry`` parameter has no such check.
    """
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    if any(name.startswith(("OTEL_", "FASTAPI_OTEL_")) for name in os.environ):
        return {}
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(
    settings: AppSettings | None = None,
    *,
    city_loader: CityLoader | None = None,
    store_opener: StoreOpener | None = None,
    secrets_loader: SecretsLoader | None = None,
    integrity_checked: bool = False,
    wait_for_city: bool = False,
) -> FastAPI:
    """Build the geo_router FastAPI application.

    Parameters
    ----------
    settings
        Every settings part; ``AppSettings.from_env()`` when omitted.
    city_loader, store_opener, secrets_loader
        Replacements for :func:`load_city` (of the routing part), :func:`open_store`,
        :func:`open_secrets`; each is called with the whole ``AppSettings``.
    integrity_checked
        The caller has just run SQLite's ``quick_check`` on the store (the uvicorn factory):
        the lifespan does not read the whole file a second time.
    wait_for_city
        Finish the lifespan startup only once the city is loaded (or failed to load). A
        server accepts connections after its app's startup, so a served worker never takes
        traffic it would answer 503 "loading" (rolling restarts hand over cleanly); in tests
        and embedded use the city loads in the background and ``/readyz`` tells.
    """
    settings = settings or AppSettings.from_env()
    app = FastAPI(
        title="geo_router",
        version=geo_router.__version__,
        description=(
            "Zone routing for city service centers and emergency intake: a location "
            "(lon, lat, EPSG:4326) goes in; out come the zones that hold it in every layer, "
            "the nearest responders and the category's agency. Errors are "
            "application/problem+json (RFC 9457). Authenticate with "
            "'Authorization: Bearer KEY' or 'X-API-Key: KEY'."
        ),
        openapi_tags=OPENAPI_TAGS,
        # Operation ids are the handlers' names (snake_case), stable for generated clients.
        generate_unique_id_function=lambda route: route.name,
        default_response_class=ORJSONResponse,
        # FastAPI's docs pages load their assets from CDNs; api.routers.docs serves them.
        docs_url=None,
        redoc_url=None,
        lifespan=_make_lifespan(
            city_loader or _load_city,
            store_opener or open_store,
            secrets_loader or open_secrets,
            wait_for_city,
            integrity_check=not integrity_checked,
        ),
        **_telemetry_off(),
    )
    state = app.state
    state.settings = settings
    state.router = None
    state.geocoder = None
    state.store = None
    state.secrets = None
    state.auth = None
    state.audit = None
    state.journal = None
    state.journal_error = None
    state.replay_loop = None
    state.load_error = None
    state.ready_event = threading.Event()
    state.metrics = Metrics()

    install_error_handlers(app)
    # One layer: request id (outermost), catch-all 500, metrics, body limit, admission.
    state.trusted_proxies = TrustedProxies.parse(settings.server.trusted_proxies)
    state.admission = admission_for(app)
    shed_with(state.admission)  # served by api.connections: lower GETs shed before the app
    app.add_middleware(
        ApiMiddleware,
        metrics=state.metrics,
        max_bytes=settings.api.max_body_bytes,
        admission=state.admission,
    )

    route.include_routes(app)  # GET /v1/route first among the app's routes: the hot path
    for module in (collections, info, health, metrics):
        app.include_router(module.router, responses=schemas.PROBLEM_RESPONSES)
    for module in (subscribers, callers, reports, layers, open311, mapview):
        app.include_router(module.router, responses=schemas.PROBLEM_RESPONSES)
    if settings.api.legacy_caller_path:  # off by default: the number would sit in the URL
        app.include_router(callers.legacy_router, responses=schemas.PROBLEM_RESPONSES)
    app.include_router(docs.router)
    app.openapi = _custom_openapi(app)  # type: ignore[method-assign]
    return app
