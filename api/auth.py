"""API-key authentication and role checks.

Keys come as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` and are verified by the
store's ``KeyStore`` (which caches positive lookups itself). While no key was ever created
(revoked keys count) and the server is bound to a loopback address, the service runs open
for loopback peers: each such request acts as an admin principal, and startup says so. A
peer from another machine gets 401 then, and once any key has existed every request without
a valid key gets 401.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from geo_router.errors import AuthenticationError, PermissionDeniedError
from geo_router.intake.reports.models import Actor
from geo_router.settings import is_loopback_host
from geo_router.store.schema import ROLES

if TYPE_CHECKING:
    from geo_router.intake.audit import AuditService

__all__ = [
    "ADMIN",
    "ROLES",
    "Authenticator",
    "OpenPrincipal",
    "Principal",
    "extract_key",
    "is_loopback_host",
    "peer_is_loopback",
]

#: Every role a key may hold (``store.schema.ROLES``); admin may do everything.
ADMIN = "admin"

#: How long a "no key was ever created" answer is reused (seconds); "some key was" is final.
OPEN_MODE_TTL_S = 2.0


#: Who is calling: an ``ApiKeyRecord`` or the open-mode principal. The same protocol as the
#: library's report actor, so a principal is passed to the services as it is.
Principal = Actor


@dataclass(frozen=True, slots=True)
class OpenPrincipal:
    """The caller in open mode (no key ever, loopback server and peer): acts as admin."""

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

    def count_all(self) -> int: ...


#: The 401 for a caller from another machine while no key exists: open mode is loopback only.
NO_KEYS_REMOTE = (
    "this service has no API keys yet and only serves its own machine without one: "
    "create a key with 'geo-router keys create --role admin --name ops' and send it as "
    "'Authorization: Bearer KEY'"
)


def peer_is_loopback(peer: str | None) -> bool:
    """Whether the request's peer address (ASGI ``scope["client"][0]``) is this machine.

    An unknown peer (None, e.g. a Unix socket) does not count as loopback.
    """
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer.strip("[]")).is_loopback
    except ValueError:
        return False


class Authenticator:
    """Turns request headers into a principal, or raises 401/403 errors.

    Open mode (every caller acts as admin) needs all three: the server bound to a loopback
    address, no key ever created in the store (revoked keys count: once a key has existed,
    the service never falls back to open mode), and the request's peer on loopback.

    Parameters
    ----------
    keys
        The store's ``KeyStore`` (``verify``, ``count_active``, ``count_all``).
    host
        The address the server is bound to (``ServerSettings.host``).
    audit
        Records every refusal (401 and 403) in the audit trail without waiting for the
        database (``AuditService.submit``); never changes the answer.
    """

    def __init__(self, keys: _KeyStore, host: str, *, audit: AuditService | None = None) -> None:
        self.keys = keys
        self.audit = audit
        self.loopback = is_loopback_host(host)
        self._keyed = False  # a key has existed; once True, never False again
        self._checked_until = 0.0
        self._lock = threading.Lock()

    def keyed(self) -> bool:
        """Whether any key was ever created (True is cached for good, False for a moment)."""
        if self._keyed:
            return True
        now = time.monotonic()
        if now >= self._checked_until:
            with self._lock:
                if not self._keyed and self.keys.count_all() > 0:
                    self._keyed = True
                self._checked_until = now + OPEN_MODE_TTL_S
        return self._keyed

    def open_mode(self) -> bool:
        """True while no key was ever created and the server is loopback-bound.

        A request is served open only when, in addition, its peer is loopback
        (:meth:`authenticate`).
        """
        return self.loopback and not self.keyed()

    def refresh(self) -> None:
        """Check the store again at the next request (after creating keys)."""
        self._checked_until = 0.0

    def authenticate(
        self, headers: Mapping[str, str], peer: str | None = None, *, where: str | None = None
    ) -> Principal:
        """The principal of a request; ``AuthenticationError`` without a usable key.

        ``peer`` is the client's address (``request.client.host``); open mode serves only a
        loopback peer. ``where`` names the route (its template, never the raw path, which
        may hold a phone number) for the audit record of a refusal.
        """
        try:
            return self._authenticate(headers, peer)
        except AuthenticationError as exc:
            self._audit_refusal(None, 401, exc, where)
            raise

    def authorize(
        self, principal: Principal, roles: tuple[str, ...], *, where: str | None = None
    ) -> None:
        """:func:`check_role`, auditing a refusal (403)."""
        try:
            check_role(principal, roles)
        except PermissionDeniedError as exc:
            self._audit_refusal(principal, 403, exc, where)
            raise

    def _audit_refusal(
        self, principal: Principal | None, status: int, exc: Exception, where: str | None
    ) -> None:
        if self.audit is None:
            return
        detail: dict[str, object] = {"status": status, "reason": type(exc).__name__}
        if where:
            detail["route"] = where
        if principal is not None:
            detail["role"] = principal.role
        # Queued, not written here: this runs on the event loop, and refusals come in floods.
        self.audit.submit("auth_failure", "access_control", principal, (), detail)

    def _authenticate(self, headers: Mapping[str, str], peer: str | None) -> Principal:
        key = extract_key(headers)
        if key is not None:
            record = self.keys.verify(key)
            if record is not None and getattr(record, "revoked_at", None) is None:
                return record  # type: ignore[no-any-return]  # an ApiKeyRecord (KeyStore.verify)
        if self.open_mode():
            if peer_is_loopback(peer):
                return OPEN_PRINCIPAL
            raise AuthenticationError(NO_KEYS_REMOTE)
        if key is None:
            raise AuthenticationError(
                "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
            )
        raise AuthenticationError("unknown or revoked API key")


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
