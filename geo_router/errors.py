"""One family of domain errors.

The library raises only these; the API maps each class to an HTTP status in one table
(``api/errors.py``) and renders ``application/problem+json``. ``message`` is safe to show a
client; ``detail`` carries anything extra (field names, per-feature reasons) as plain data.

    GeoRouterError
    ├── ConfigurationError          settings or secrets missing / unusable
    │   ├── ProfileError            a city profile that cannot be loaded (file + key named)
    │   └── StoreCityMismatchError  a store created for another city than the one to serve
    ├── InputError                  a caller sent something unusable (4xx)
    │   ├── InvalidCoordinatesError NaN / infinite / out of range / not numbers (row named)
    │   ├── UnknownCRSError         a CRS pyproj does not know
    │   ├── InvalidGeometryError    malformed or invalid GeoJSON / geometry
    │   ├── UnknownCategoryError    a category code the profile does not define
    │   ├── InvalidPhoneError       a phone number that does not parse
    │   ├── BatchTooLargeError      more points than the configured limit
    │   ├── UploadTooLargeError     an uploaded file over the configured size limit
    │   └── IdempotencyConflictError same Idempotency-Key, different body
    ├── LayerValidationError        a zone layer refused by the validation gate (per feature)
    ├── NotFoundError               an id that does not exist (or is not visible to the caller)
    ├── VersionConflictError        a layer version change its state does not allow
    ├── AuthenticationError         no key / unknown key / revoked key
    ├── PermissionDeniedError       a key whose role may not do this
    ├── RateLimitedError            over a rate limit (``retry_after_s``)
    ├── AuditUnavailableError       the audit log cannot be written (registry reads fail closed)
    └── StoreUnavailableError       the database is unreachable, full or failing (503)
        └── JournalUnavailableError the local journal cannot take a record either
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuditUnavailableError",
    "AuthenticationError",
    "BatchTooLargeError",
    "ConfigurationError",
    "GeoRouterError",
    "IdempotencyConflictError",
    "InputError",
    "InvalidCoordinatesError",
    "InvalidGeometryError",
    "InvalidPhoneError",
    "JournalUnavailableError",
    "LayerValidationError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProfileError",
    "RateLimitedError",
    "StoreCityMismatchError",
    "StoreInUseError",
    "StoreIntegrityError",
    "StoreSecretsMismatchError",
    "StoreUnavailableError",
    "UnknownCRSError",
    "UnknownCategoryError",
    "UploadTooLargeError",
    "VersionConflictError",
]


class GeoRouterError(Exception):
    """Base of every error geo_router raises on purpose."""

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail or {}


class ConfigurationError(GeoRouterError):
    """Settings, secrets or files the service needs are missing or unusable."""


class ProfileError(ConfigurationError):
    """A city profile that cannot be loaded; the message names the file and the key."""


class StoreCityMismatchError(ConfigurationError):
    """The store records another city than the one to serve; the message names both.

    ``detail`` holds ``store`` (its description, never a password), ``recorded_city`` and
    ``requested_city``.
    """


class StoreSecretsMismatchError(ConfigurationError):
    """The configured secrets do not open this store, or the store is not the one they are
    bound to (deleted, replaced, or restored from elsewhere); the message says which and how
    to proceed, never a secret."""


class StoreInUseError(ConfigurationError):
    """A server holds the store a maintenance command would change, or the reverse."""


class StoreIntegrityError(ConfigurationError):
    """The database file is damaged (SQLite ``quick_check`` failed): restore a backup."""


class InputError(GeoRouterError):
    """Input from a caller that cannot be used."""


class InvalidCoordinatesError(InputError):
    """Coordinates that are NaN, infinite, out of range or not numbers."""


class UnknownCRSError(InputError):
    """A coordinate reference system that pyproj does not know."""


class InvalidGeometryError(InputError):
    """Malformed GeoJSON or a geometry that cannot be used."""


class UnknownCategoryError(InputError):
    """A report category code that the city profile does not define."""


class InvalidPhoneError(InputError):
    """A phone number that cannot be parsed or is not a possible number."""


class BatchTooLargeError(InputError):
    """More items in one request than the configured limit."""


class UploadTooLargeError(InputError):
    """An uploaded file larger than the configured limit (refused before it is read)."""


class IdempotencyConflictError(InputError):
    """An Idempotency-Key reused with a different request body."""


class LayerValidationError(GeoRouterError):
    """A zone layer refused by the validation gate; ``detail['report']`` has the reasons."""


class NotFoundError(GeoRouterError):
    """Something that does not exist, or that the caller may not see."""


class VersionConflictError(GeoRouterError):
    """A layer version change its current state does not allow (retiring the only active one)."""


class AuthenticationError(GeoRouterError):
    """A request with no API key, an unknown key or a revoked key."""


class PermissionDeniedError(GeoRouterError):
    """A key whose role may not perform the operation."""


class RateLimitedError(GeoRouterError):
    """Over a rate limit; retry after ``retry_after_s`` seconds."""

    def __init__(
        self, message: str, *, retry_after_s: int, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, detail=detail)
        self.retry_after_s = retry_after_s


class AuditUnavailableError(GeoRouterError):
    """The audit log cannot be written (database down, disk full, locked too long).

    A read of registry data for display is refused with it (fail closed); emergency work
    never sees it (its audit records go to the fallback).
    """


class StoreUnavailableError(GeoRouterError):
    """The database cannot be used right now: unreachable, down, disk full or an I/O error.

    The store layer raises this one error instead of a driver's exception (see
    ``geo_router/store/outages.py``); callers retry after ``retry_after_s`` seconds. An
    emergency report is journaled instead (``geo_router/journal``). ``detail['reason']``
    names the kind of failure, never a URL or a password.
    """

    def __init__(
        self, message: str, *, retry_after_s: int = 5, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, detail=detail)
        self.retry_after_s = retry_after_s


class JournalUnavailableError(StoreUnavailableError):
    """The local journal cannot take a record (its disk is full beyond the preallocated space)."""
