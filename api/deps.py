"""FastAPI dependencies: settings, the loaded city, the store, secrets, callers' roles.

All are ``async def`` on purpose: FastAPI runs sync dependencies in a thread pool, which
costs more than the work they do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request

from api.auth import ROLES, Authenticator, check_role
from api.errors import NotReadyError
from geo_router.errors import ConfigurationError
from geo_router.settings import Settings

if TYPE_CHECKING:
    from geo_router.city.router import Router

__all__ = [
    "get_geocoder",
    "get_principal",
    "get_router",
    "get_secrets",
    "get_settings",
    "get_store",
    "require_roles",
]


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def router_or_503(request: Request) -> Router:
    """The loaded ``Router``; ``NotReadyError`` (503) while the layers are still loading."""
    router = request.app.state.router
    if router is None:
        error = request.app.state.load_error
        raise NotReadyError(
            f"city layers failed to load: {error}" if error else "city layers are still loading"
        )
    return router  # type: ignore[no-any-return]


async def get_router(request: Request) -> Router:
    """The loaded ``Router`` (503 problem until ready)."""
    return router_or_503(request)


async def get_store(request: Request) -> Any:
    """The opened ``Store`` (``.engine``, ``.keys``, ``.dialect``)."""
    store = request.app.state.store
    if store is None:
        raise ConfigurationError("the database store is not open")
    return store


async def get_secrets(request: Request) -> Any:
    """The loaded ``Secrets`` (pepper + encryption key)."""
    secrets = request.app.state.secrets
    if secrets is None:
        raise ConfigurationError("secrets are not loaded")
    return secrets


async def get_geocoder(request: Request) -> Any:
    """The ``Geocoder``, or None when the city has no address points (503 until ready)."""
    router_or_503(request)
    return request.app.state.geocoder


async def get_principal(request: Request) -> Any:
    """The caller: an ``ApiKeyRecord`` or the open-mode admin principal (401 otherwise)."""
    auth: Authenticator | None = request.app.state.auth
    if auth is None:
        refusal = request.app.state.load_error
        if refusal:  # the store was refused at startup (created for another city)
            raise NotReadyError(refusal)
        raise ConfigurationError("authentication is not configured (store not open)")
    return auth.authenticate(request.headers)


def require_roles(*roles: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency admitting callers holding one of ``roles`` (admin always passes).

    Returns the principal (``ApiKeyRecord`` or the open-mode principal); raises 401 without
    a usable key and 403 for a key of another role.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; known: {ROLES}")
    wanted = tuple(roles)

    async def dependency(request: Request) -> Any:
        principal = await get_principal(request)
        check_role(principal, wanted)
        return principal

    dependency.__name__ = f"require_{'_'.join(roles) or 'admin'}"
    return dependency
