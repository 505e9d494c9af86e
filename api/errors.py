"""Errors as ``application/problem+json`` (RFC 9457), from one status table.

Every domain error (``geo_router.errors``) maps to a status in ``STATUS_BY_ERROR``; the
handlers registered by :func:`install_error_handlers` render it, FastAPI's validation errors,
HTTP exceptions and, as a last resort, any unexpected exception (a 500 is a bug).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.request_ids import request_id_of
from geo_router.errors import (
    AuditUnavailableError,
    AuthenticationError,
    BatchTooLargeError,
    ConfigurationError,
    GeoRouterError,
    IdempotencyConflictError,
    InputError,
    InvalidCoordinatesError,
    InvalidGeometryError,
    InvalidPhoneError,
    LayerValidationError,
    NotFoundError,
    PermissionDeniedError,
    ProfileError,
    RateLimitedError,
    StoreUnavailableError,
    UnknownCategoryError,
    UnknownCRSError,
    UploadTooLargeError,
    VersionConflictError,
)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_BASE",
    "STATUS_BY_ERROR",
    "BodyTooLargeError",
    "MalformedJSONError",
    "NotReadyError",
    "install_error_handlers",
    "problem_body",
    "problem_response",
    "request_id_of",
    "status_for",
]

log = logging.getLogger("geo_router.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://geo-router.dev/problems/"


class NotReadyError(GeoRouterError):
    """The service has not finished loading its layers (or failed to)."""


class MalformedJSONError(InputError):
    """A request body that is not JSON; the message names the position."""


class BodyTooLargeError(InputError):
    """A request body larger than ``settings.max_body_bytes``."""


#: The one table from error class to HTTP status; subclasses inherit via the MRO.
STATUS_BY_ERROR: dict[type[GeoRouterError], int] = {
    GeoRouterError: 500,
    ConfigurationError: 503,
    ProfileError: 503,
    NotReadyError: 503,
    InputError: 422,
    InvalidCoordinatesError: 422,
    UnknownCRSError: 422,
    InvalidGeometryError: 422,
    UnknownCategoryError: 422,
    InvalidPhoneError: 422,
    MalformedJSONError: 400,
    BatchTooLargeError: 413,
    BodyTooLargeError: 413,
    UploadTooLargeError: 413,
    IdempotencyConflictError: 422,
    LayerValidationError: 422,
    NotFoundError: 404,
    VersionConflictError: 409,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    RateLimitedError: 429,
    AuditUnavailableError: 503,
    StoreUnavailableError: 503,
}

_TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def status_for(exc: GeoRouterError) -> int:
    """The HTTP status of a domain error: the nearest class in ``STATUS_BY_ERROR``."""
    for cls in type(exc).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def _type_uri(exc: GeoRouterError) -> str:
    """``InvalidCoordinatesError`` -> ``.../problems/invalid-coordinates``."""
    name = type(exc).__name__.removesuffix("Error") or "error"
    slug = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()
    return PROBLEM_TYPE_BASE + slug


def problem_body(
    status: int,
    detail: str,
    *,
    type_uri: str = "about:blank",
    title: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem document as a dict.

    Parameters
    ----------
    status, detail
        HTTP status and the human-readable explanation naming the problem.
    type_uri, title, instance, request_id
        The problem type URI, a short title (from the status when omitted), the request
        path and the request id.
    errors
        Per-field problems, ``[{"field": ..., "message": ...}]``.
    extra
        Extension members (e.g. ``limit``).
    """
    body: dict[str, Any] = {
        "type": type_uri,
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if request_id is not None:
        body["request_id"] = request_id
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """Render a problem dict as ``application/problem+json``."""
    return Response(
        content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY, default=str),
        status_code=int(body["status"]),
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _field_errors(detail: dict[str, Any]) -> list[dict[str, str]] | None:
    """Field errors a library error carries in ``detail['errors']`` (if any)."""
    errors = detail.get("errors")
    if isinstance(errors, list) and all(isinstance(e, dict) for e in errors):
        return [
            {"field": str(e.get("field", "")), "message": str(e.get("message", ""))} for e in errors
        ]
    field = detail.get("field")
    return [{"field": str(field), "message": str(detail.get("reason", ""))}] if field else None


def domain_problem(exc: GeoRouterError, request: Request) -> Response:
    """The problem response of a domain error."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimitedError | StoreUnavailableError):
        headers["Retry-After"] = str(max(1, int(exc.retry_after_s)))
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="geo-router"'
    extra = {k: v for k, v in exc.detail.items() if k not in {"errors", "field", "reason"}}
    body = problem_body(
        status,
        exc.message,
        type_uri=_type_uri(exc),
        title=_TITLES.get(status),
        instance=request.url.path,
        request_id=request_id_of(request),
        errors=_field_errors(exc.detail),
        extra=_json_safe(extra),
    )
    if isinstance(exc, StoreUnavailableError):  # an outage, not a bug: said once per request
        log.warning("%s on %s: %s", type(exc).__name__, request.url.path, exc.message)
    elif status >= 500 and not isinstance(exc, NotReadyError):
        log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc.message)
    return problem_response(body, headers or None)


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    """Drop extension members that would clash with the RFC 9457 core members."""
    reserved = {"type", "title", "status", "detail", "instance", "request_id"}
    return {k: v for k, v in data.items() if k not in reserved}


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("query", "lon")`` -> ``lon``; ``("body", "points", 3)`` -> ``body.points[3]``."""
    parts = list(loc)
    if parts and parts[0] in {"query", "path", "header", "cookie"}:
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "request"


def validation_problem(exc: RequestValidationError, request: Request) -> Response:
    """422 naming every offending field (400 for a body that is not JSON)."""
    errors = []
    status = 422
    for err in exc.errors():
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            status = 400
            pos = list(err.get("loc", ()))[-1]
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            message = f"body is not valid JSON: {reason} at position {pos}"
            errors.append({"field": "body", "message": message})
            continue
        errors.append({"field": _loc_to_field(err.get("loc", ())), "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    body = problem_body(
        status,
        detail,
        type_uri=PROBLEM_TYPE_BASE + ("malformed-json" if status == 400 else "validation"),
        instance=request.url.path,
        request_id=request_id_of(request),
        errors=errors,
    )
    return problem_response(body)


def http_problem(exc: StarletteHTTPException, request: Request) -> Response:
    """404 / 405 / other HTTP exceptions as problem+json (headers such as Allow kept)."""
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    if exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"method {request.method} not allowed on {request.url.path}"
    body = problem_body(
        exc.status_code, detail, instance=request.url.path, request_id=request_id_of(request)
    )
    return problem_response(body, dict(exc.headers) if exc.headers else None)


async def _domain_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GeoRouterError)
    return domain_problem(exc, request)


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return validation_problem(exc, request)


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return http_problem(exc, request)


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(GeoRouterError, _domain_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    # Unexpected exceptions: api.middleware.ApiMiddleware (its catch-all, inside its request id).
