"""Open311 GeoReport v2 at ``/open311/v2/`` (JSON and XML, the spec's error lists).

Existing GeoReport v2 clients work unchanged: POST is form-encoded (or multipart) with
``api_key`` in the form; every answer is a list; errors are ``[{"code", "description"}]``
(``<errors><error>`` in XML) with the matching HTTP status. GET endpoints are public (emergency
categories are left out of them) and
never show personal data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.client_address import client_host
from api.deps import report_service, route_of, router_or_503
from api.errors import status_for
from api.request_ids import request_id_of
from geo_router.errors import (
    AuthenticationError,
    ConfigurationError,
    GeoRouterError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    StoreUnavailableError,
    UnknownCategoryError,
)
from geo_router.intake import open311
from geo_router.intake.reports.models import Actor, Report
from geo_router.intake.reports.service import ReportService

router = APIRouter(
    prefix="/open311/v2",
    tags=["open311"],
    generate_unique_id_function=lambda route: f"open311_{route.name}",
)

POST_ROLES = ("intake",)


def _respond(kind: str, payload: Any, fmt: open311.Format, status: int = 200) -> Response:
    body, media_type = open311.render(kind, payload, fmt)
    return Response(body, status, media_type=media_type)


def _error(exc: GeoRouterError, fmt: open311.Format) -> Response:
    """A domain error as the spec's error list: 400 input, 403 bad key or role, 404 unknown
    id (401 without any key, 429 over the rate limit, 503 while loading)."""
    if isinstance(exc, AuthenticationError):
        status = 401
    elif isinstance(exc, PermissionDeniedError):
        status = 403
    elif isinstance(exc, NotFoundError):
        status = 404
    elif isinstance(exc, InputError):
        status = 400
    else:
        status = status_for(exc)
    response = _respond("errors", open311.error_list(status, exc.message), fmt, status)
    if isinstance(exc, RateLimitedError | StoreUnavailableError):
        response.headers["Retry-After"] = str(max(1, int(exc.retry_after_s)))
    if isinstance(exc, AuthenticationError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="geo-router"'
    return response


def _format(fmt: str) -> open311.Format | None:
    try:
        return open311.parse_format(fmt)
    except InputError:
        return None


def _bad_format(fmt: str) -> Response:
    text = f"unknown format {fmt!r}: use .json or .xml"
    return _respond("errors", open311.error_list(404, text), "json", 404)


def _service_names(service: ReportService) -> dict[str, str]:
    return {c.code: c.name or c.code for c in service.router.snapshot.profile.categories}


@router.get("/services.{fmt}", summary="Open311: the service list (our categories)")
async def services(request: Request, fmt: str) -> Response:
    """Every category as an Open311 service; ``group`` is the agency."""
    out = _format(fmt)
    if out is None:
        return _bad_format(fmt)
    try:
        city = router_or_503(request)
    except GeoRouterError as exc:
        return _error(exc, out)
    return _respond("services", open311.service_list(city.snapshot.profile.categories), out)


@router.get("/services/{service_code}.{fmt}", summary="Open311: a service definition")
async def service_definition(request: Request, service_code: str, fmt: str) -> Response:
    """The definition of one service (no extra attributes); 404 for unknown codes."""
    out = _format(fmt)
    if out is None:
        return _bad_format(fmt)
    try:
        city = router_or_503(request)
        categories = {c.code: c for c in city.snapshot.profile.categories}
        if service_code not in categories:
            known = ", ".join(categories) or "none"
            raise NotFoundError(f"service_code {service_code!r} not found (services: {known})")
    except GeoRouterError as exc:
        return _error(exc, out)
    return _respond("definition", open311.service_definition(categories[service_code]), out)


def _is_public(service: ReportService, report: Report) -> bool:
    """Emergency reports stay off the public GeoReport feed (the native API serves them)."""
    category = service.router.snapshot.categories.get(report.category)
    return category is None or not category.emergency


def _public_or_404(service: ReportService, report: Report) -> Report:
    if not _is_public(service, report):
        raise NotFoundError(f"service request {report.id!r} not found")
    return report


def _find(service: ReportService, query: open311.Open311Query) -> list[Report]:
    """Up to ``query.limit`` public reports, fetched in pages of the service's maximum."""
    items: list[Report] = []
    filters = query.filters
    while len(items) < query.limit:
        page = service.list(filters, actor=None)
        items.extend(r for r in page.items if _is_public(service, r))
        if len(page.items) < filters.limit:
            break
        filters = filters.model_copy(update={"offset": filters.offset + filters.limit})
    return items[: query.limit]


@router.get("/requests.{fmt}", summary="Open311: query service requests")
async def list_requests(request: Request, fmt: str) -> Response:
    """Requests by ids, service_code, start/end date (last 90 days by default), status."""
    out = _format(fmt)
    if out is None:
        return _bad_format(fmt)
    try:
        service = report_service(request)
        query = open311.parse_query(request.query_params, now=datetime.now(UTC))
        found = await run_in_threadpool(_find, service, query)
        names = _service_names(service)
        snapshot = service.router.snapshot
    except GeoRouterError as exc:
        return _error(exc, out)
    items = [open311.service_request(r, names.get(r.category), snapshot) for r in found]
    return _respond("requests", items, out)


async def _public_report(request: Request, report_id: str) -> tuple[ReportService, Report]:
    """The service and one report that the public feed may show (else NotFoundError)."""
    service = report_service(request)
    report = await run_in_threadpool(service.get, report_id, actor=None)
    return service, _public_or_404(service, report)


@router.get("/requests/{request_id}.{fmt}", summary="Open311: one service request")
async def get_request(request: Request, request_id: str, fmt: str) -> Response:
    """One request as a one-item list; 404 for unknown ids."""
    out = _format(fmt)
    if out is None:
        return _bad_format(fmt)
    try:
        service, report = await _public_report(request, request_id)
        names = _service_names(service)
        snapshot = service.router.snapshot
    except GeoRouterError as exc:
        return _error(exc, out)
    item = open311.service_request(report, names.get(report.category), snapshot)
    return _respond("requests", [item], out)


@router.get("/tokens/{token}.{fmt}", summary="Open311: request id of a token")
async def get_token(request: Request, token: str, fmt: str) -> Response:
    """Ids are issued synchronously, so a token is its request's id."""
    out = _format(fmt)
    if out is None:
        return _bad_format(fmt)
    try:
        _, report = await _public_report(request, token)
    except GeoRouterError as exc:
        return _error(exc, out)
    return _respond("requests", open311.token_response(token, report.id), out)


def _principal(request: Request, form_key: str | None) -> Actor:
    """The caller of a POST: intake or admin, by the form's ``api_key`` or the usual headers.

    A bad ``api_key`` in the form is the spec's 403; with no key at all, or a bad key in
    the headers, the answer is 401 like everywhere else in the API.
    """
    auth = request.app.state.auth
    if auth is None:
        raise ConfigurationError("authentication is not configured (store not open)")
    headers = {"x-api-key": form_key} if form_key else request.headers
    try:
        peer = client_host(request.scope, request.app.state.trusted_proxies)
        principal = auth.authenticate(headers, peer, where=route_of(request))
    except AuthenticationError as exc:
        if form_key:
            raise PermissionDeniedError("api_key is not valid (unknown or revoked)") from None
        raise AuthenticationError(
            "api_key was not provided: send it in the form (api_key) or as "
            "'Authorization: Bearer KEY'"
        ) from exc
    auth.authorize(principal, POST_ROLES, where=route_of(request))
    return principal  # type: ignore[no-any-return]


@router.post(
    "/requests.{fmt}",
    summary="Open311: create a service request (form-encoded)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["service_code"],
                        "properties": {
                            name: {"type": "string"}
                            for name in (
                                "api_key",
                                "jurisdiction_id",
                                "service_code",
                                "lat",
                                "long",
                                "address_string",
                                "address_id",
                                "email",
                                "device_id",
                                "account_id",
                                "first_name",
                                "last_name",
                                "phone",
                                "description",
                                "media_url",
                            )
                        },
                    }
                }
            }
        }
    },
)
async def create_request(request: Request, fmt: str) -> Response:
    """File a report from an Open311 form; answers ``[{service_request_id, ...}]``."""
    out = _format(fmt)
    if out is None:
        return _bad_format(fmt)
    try:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        actor = _principal(request, (fields.get("api_key") or "").strip() or None)
        post = open311.parse_post(fields)
        service = report_service(request)
        report_in = post.to_report_input(actor.channel or open311.DEFAULT_CHANNEL)
        rid = request_id_of(request.scope)
        report = await run_in_threadpool(
            lambda: service.create(report_in, actor=actor, request_id=rid)
        )
    except UnknownCategoryError as exc:
        return _error(InputError(f"service_code: {exc.message}"), out)
    except GeoRouterError as exc:
        return _error(exc, out)
    return _respond("requests", open311.post_response(report), out)
