"""FastAPI dependencies: every one the routers use, each reading what the app holds.

Settings parts, the loaded city, the store, the secrets, the metrics, callers' roles. All
are ``async def`` on purpose: FastAPI runs sync dependencies in a thread pool, which costs
more than the work they do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from api.auth import ROLES, Authenticator, Principal
from api.client_address import client_host
from api.errors import NotReadyError
from api.request_metrics import Metrics
from api.settings import ApiSettings, AppSettings
from geo_router.errors import ConfigurationError
from geo_router.intake.locate import Locator
from geo_router.intake.reports.pending import PendingReports
from geo_router.intake.reports.service import ReportService
from geo_router.intake.secrets import Secrets
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.planning.versions import LayerVersions
from geo_router.settings import IntakeSettings, RoutingSettings
from geo_router.store.database import Store
from geo_router.store.layer_versions_repo import LayerVersionsRepo
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.subscribers_repo import SubscribersRepo

if TYPE_CHECKING:
    from geo_router.city.router import Router
    from geo_router.intake.geocode import Geocoder

__all__ = [
    "app_settings_of",
    "get_api_settings",
    "get_geocoder",
    "get_intake_settings",
    "get_layer_versions",
    "get_metrics",
    "get_principal",
    "get_report_service",
    "get_router",
    "get_routing_settings",
    "get_secrets",
    "get_settings",
    "get_store",
    "get_subscriber_service",
    "report_service",
    "report_service_of",
    "require_roles",
    "route_of",
    "router_or_503",
]


def app_settings_of(request: Request) -> AppSettings:
    """The settings the app was built with (from the environment for an app built otherwise)."""
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, AppSettings) else AppSettings.from_env()


async def get_settings(request: Request) -> AppSettings:
    """Every settings part the app was built with."""
    return app_settings_of(request)


async def get_routing_settings(request: Request) -> RoutingSettings:
    """The routing settings (default k, batch limit, ...)."""
    return app_settings_of(request).routing


async def get_intake_settings(request: Request) -> IntakeSettings:
    """The intake settings (rate limit, idempotency TTL)."""
    return app_settings_of(request).intake


async def get_api_settings(request: Request) -> ApiSettings:
    """The web layer's own settings (body limit, map tiles)."""
    return app_settings_of(request).api


def router_or_503(request: Request) -> Router:
    """The loaded ``Router``; ``NotReadyError`` (503) while the layers are still loading."""
    return _loaded_router(request.app)


def _loaded_router(app: Any) -> Router:
    router: Router | None = app.state.router
    if router is None:
        error = app.state.load_error
        raise NotReadyError(
            f"city layers failed to load: {error}" if error else "city layers are still loading"
        )
    return router


async def get_router(request: Request) -> Router:
    """The loaded ``Router`` (503 problem until ready)."""
    return router_or_503(request)


async def get_store(request: Request) -> Store:
    """The opened ``Store`` (``.engine``, ``.keys``, ``.dialect``)."""
    store: Store | None = request.app.state.store
    if store is None:
        raise ConfigurationError("the database store is not open")
    return store


async def get_secrets(request: Request) -> Secrets:
    """The loaded ``Secrets`` (pepper + encryption key)."""
    secrets: Secrets | None = request.app.state.secrets
    if secrets is None:
        raise ConfigurationError("secrets are not loaded")
    return secrets


async def get_geocoder(request: Request) -> Geocoder | None:
    """The ``Geocoder``, or None when the city has no address points (503 until ready)."""
    router_or_503(request)
    geocoder: Geocoder | None = request.app.state.geocoder
    return geocoder


async def get_layer_versions(request: Request) -> LayerVersions:
    """The city's layer versions in the store (503 until the city is loaded)."""
    router = router_or_503(request)
    store = await get_store(request)
    repo = LayerVersionsRepo(store.engine)
    return LayerVersions(repo, router.snapshot.profile, audit=request.app.state.audit)


async def get_metrics(request: Request) -> Metrics:
    """The app's Prometheus metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_principal(request: Request) -> Principal:
    """The caller: an ``ApiKeyRecord`` or the open-mode admin principal (401 otherwise)."""
    auth: Authenticator | None = request.app.state.auth
    if auth is None:
        refusal = request.app.state.load_error
        if refusal:  # the store was refused at startup (created for another city)
            raise NotReadyError(refusal)
        raise ConfigurationError("authentication is not configured (store not open)")
    peer = client_host(request.scope, request.app.state.trusted_proxies)
    return auth.authenticate(request.headers, peer, where=route_of(request))


def route_of(request: Request) -> str:
    """The method and route template of a request (``GET /v1/subscribers/{subscriber_id}``):
    never the raw path, which may hold a phone number."""
    template = getattr(request.scope.get("route"), "path", None)
    return f"{request.method} {template or '?'}"


def require_roles(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting callers holding one of ``roles`` (admin always passes).

    Returns the principal (``ApiKeyRecord`` or the open-mode principal); raises 401 without
    a usable key and 403 for a key of another role.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; known: {ROLES}")
    wanted = tuple(roles)

    async def dependency(request: Request) -> Principal:
        principal = await get_principal(request)
        auth: Authenticator = request.app.state.auth
        auth.authorize(principal, wanted, where=route_of(request))
        return principal

    dependency.__name__ = f"require_{'_'.join(roles) or 'admin'}"
    return dependency


# --- intake services -------------------------------------------------------------------------

#: Phone region before the city is loaded (reading subscribers needs no city).
DEFAULT_PHONE_REGION = "ID"


def report_service(request: Request) -> ReportService:
    """The report service over the app's store, city, secrets and geocoder.

    Raises ``NotReadyError`` (503) until the city is loaded and ``ConfigurationError`` without
    a store or secrets.
    """
    return report_service_of(request.app)


def report_service_of(app: Any) -> ReportService:
    """:func:`report_service` from the app itself (the journal's replay thread has no request)."""
    city = _loaded_router(app)
    state = app.state
    if state.store is None or state.secrets is None:
        raise ConfigurationError("the database store is not open")
    settings: AppSettings = state.settings
    return ReportService(
        ReportsRepo(state.store.engine, state.secrets),
        Locator(SubscribersRepo(state.store.engine, state.secrets), state.geocoder),
        city,
        state.secrets,
        region=city.snapshot.profile.phone_region,
        rate_limit_per_hour=settings.intake.rate_limit_per_hour,
        k=settings.routing.default_k,
        idempotency_ttl=timedelta(hours=settings.intake.idempotency_ttl_hours),
        audit=state.audit,
        pending=PendingReports(state.journal) if state.journal is not None else None,
    )


async def get_report_service(request: Request) -> ReportService:
    """The report service (see :func:`report_service`)."""
    return report_service(request)


async def get_subscriber_service(
    request: Request,
    store: Annotated[Store, Depends(get_store)],
    secrets: Annotated[Secrets, Depends(get_secrets)],
) -> SubscriberService:
    """The registry over the app's store; the city is fetched only when routing is needed.

    Reading and deleting subscribers works while the city is still loading; registering
    (which resolves zones) answers 503 until it is in.
    """
    city = request.app.state.router
    region = city.snapshot.profile.phone_region if city is not None else None
    return SubscriberService(
        SubscribersRepo(store.engine, secrets),
        ReportsRepo(store.engine, secrets),
        secrets,
        lambda: router_or_503(request),
        request.app.state.geocoder,
        region=region or DEFAULT_PHONE_REGION,
        audit=request.app.state.audit,
    )
