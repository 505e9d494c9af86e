"""API-key authentication and role checks.

Keys come as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` and are verified by the
store's ``KeyStore`` (which caches positive lookups itself). With no active key and the
server bound to a loopback address, the service runs open: every request acts as an
admin principal, and startup says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from geo_router.errors import AuthenticationError, PermissionDeniedError
from geo_router.intake.reports.models import Actor
from geo_router.settings import is_loopback_host
from geo_router.store.schema import ROLES

__all__ = [
    "ADMIN",
    "ROLES",
    "Authenticator",
    "OpenPrincipal",
    "Principal",
    "extract_key",
    "is_loopback_host",
]

#: Every role a key may hold (``store.schema.ROLES``); admin may do everything.
ADMIN = "admin"

#: How long the "are there any active keys?" answer is reused (seconds).
OPEN_MODE_TTL_S = 2.0


#: Who is calling: an ``ApiKeyRecord`` or the open-mode principal. The same protocol as the
#: library's report actor, so a principal is passed to the services as it is.
Principal = Actor


@dataclass(frozen=True, slots=True)
class OpenPrincipal:
    """The caller in open mode (no keys, loopback): acts as admin."""

    id: str = "open-mode"
    name: str = "open mode (no API keys, loopback only)"
    role: str = ADMIN
    channel: str | None = None
    prefix: str | None = None


OPEN_PRINCIPAL = OpenPrincipal()


def extract_key(headers: Mapping[str, str]) -> str | None:
    """The API key of a request: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    auth = _header(headers, "authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = _header(headers, "x-api-key")
    return key.strip() if key and key.strip() else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers.get(name)`` without raising and catching a ``KeyError`` on a miss.

    Starlette's ``Headers.get`` is ``Mapping.get`` over ``__getitem__``: a missing header (the
    usual case for one of the two key headers, both in open mode) costs an exception each.
    """
    return headers[name] if name in headers else None  # noqa: SIM401 (get is the slow path)


class _KeyStore(Protocol):
    def verify(self, key: str) -> Any: ...

    def count_active(self) -> int: ...


class Authenticator:
    """Turns request headers into a principal, or raises 401/403 errors.

    Parameters
    ----------
    keys
        The store's ``KeyStore`` (``verify``, ``count_active``).
    host
        The address the server is bound to; open mode needs a loopback address.
    """

    def __init__(self, keys: _KeyStore, host: str) -> None:
        self.keys = keys
        self.loopback = is_loopback_host(host)
        self._open_until = 0.0
        self._open = False
        self._lock = threading.Lock()

    def open_mode(self) -> bool:
        """True while no key is active and the server is loopback-bound (cached briefly)."""
        if not self.loopback:
            return False
        now = time.monotonic()
        if now >= self._open_until:
            with self._lock:
                self._open = self.keys.count_active() == 0
                self._open_until = now + OPEN_MODE_TTL_S
        return self._open

    def refresh(self) -> None:
        """Forget the cached open-mode answer (after creating or revoking keys)."""
        self._open_until = 0.0

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The principal of a request; ``AuthenticationError`` without a usable key."""
        key = extract_key(headers)
        if key is None:
            if self.open_mode():
                return OPEN_PRINCIPAL
            raise AuthenticationError(
                "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
            )
        record = self.keys.verify(key)
        if record is None or getattr(record, "revoked_at", None) is not None:
            if self.open_mode():
                return OPEN_PRINCIPAL
            raise AuthenticationError("unknown or revoked API key")
        return record  # type: ignore[no-any-return]  # an ApiKeyRecord (KeyStore.verify)


def check_role(principal: Principal, roles: tuple[str, ...]) -> None:
    """Raise ``PermissionDeniedError`` unless the principal is admin or holds one of ``roles``."""
    role = getattr(principal, "role", None)
    if role == ADMIN or role in roles:
        return
    allowed = ", ".join(sorted({*roles, ADMIN}))
    raise PermissionDeniedError(
        f"role {role!r} may not do this; allowed roles: {allowed}",
        detail={"role": role, "allowed_roles": sorted({*roles, ADMIN})},
    )
