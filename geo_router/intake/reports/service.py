"""Report intake: create (idempotent, screened for abuse), read, list, lifecycle, views.

A report is stored with the full routing decision that was made for it (the routing answer
with zones, candidates and layer versions, responders, agency, flags), so a dispatcher can
later see exactly why it went where it went, even after the layers changed. Abuse screening
only ever *flags*: an emergency report is always stored and routed; only a non-emergency
report from a number over its hourly limit is refused (``RateLimitedError``).

When the store is unavailable (``StoreUnavailableError``), an emergency report is located
and routed from memory and kept in the local journal (:class:`PendingReports`): it is
answered with status ``pending_store`` until the journal is replayed into the store. Other
reports get the error (503, retry later).

The reporter's number is parsed and hashed once (:class:`PhoneNumber`), encrypted once for
storage, and decrypted only for an answer that shows it to an admin or intake key.
"""

from __future__ import annotations

import builtins
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from geo_router.city.models import CategoryRoute, RouteResult
from geo_router.city.router import Router
from geo_router.encoding.json import route_answer_dict
from geo_router.errors import (
    IdempotencyConflictError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    StoreUnavailableError,
    UnknownCategoryError,
)
from geo_router.intake.audit import AuditService
from geo_router.intake.locate import Caller, Located, Locator, route_located
from geo_router.intake.phones import PhoneNumber, mask_phone
from geo_router.intake.reports.models import (
    TRANSITIONS,
    Actor,
    Page,
    Report,
    ReportFilters,
    ReportInput,
    StatusChange,
    report_dict,
    shows_registry,
)
from geo_router.intake.reports.pending import (
    LOCATE_ON_REPLAY,
    PendingReports,
    needs_locating,
    unlocated_decision,
)
from geo_router.intake.router_source import RouterSource, router_getter
from geo_router.intake.secrets import Secrets
from geo_router.store.reports_repo import (
    IdempotencyEntry,
    NumberWindow,
    ReportsRepo,
    StoredAnswer,
)
from geo_router.store.schema import (
    CHANNELS,
    PENDING_STORE,
    RESOLUTIONS,
    STATUSES,
    new_report_id,
    utcnow,
)

__all__ = ["RATE_WINDOW", "REPEAT_FALSE_THRESHOLD", "FiledReport", "ReportService"]

#: False reports from one number that earn the ``repeat_false_reports`` flag.
REPEAT_FALSE_THRESHOLD = 2
#: The window of the per-number rate limit.
RATE_WINDOW = timedelta(hours=1)
#: Roles that see a report's phone number (admin in full, intake masked).
_PHONE_ROLES = ("admin", "intake")


@dataclass(frozen=True, slots=True)
class FiledReport:
    """A new (or replayed) report and the answer its filer may see.

    ``pending`` is True for an emergency kept in the journal (the store was unavailable).
    """

    report: Report
    view: dict[str, Any]
    pending: bool = False


def _actor_id(actor: Actor | None) -> str:
    """The id idempotency keys and records are scoped to ("" without an actor)."""
    return actor.id if actor is not None and actor.id else ""


def _actor_label(actor: Actor | None) -> str:
    """``id/name`` of an actor, for the history."""
    ident = (actor.id if actor is not None else None) or "system"
    name = actor.name if actor is not None else None
    return f"{ident}/{name}"[:200] if name and name != ident else ident[:200]


def _channel_scope(actor: Actor | None) -> str | None:
    """The only channel an intake key bound to a channel may see, else None (all)."""
    return actor.channel if actor is not None and actor.role == "intake" else None


def _request_hash(payload: ReportInput, channel: str) -> str:
    """sha256 of the canonical JSON of a request (sorted keys, defaults filled in)."""
    body = payload.model_dump(mode="json")
    body["channel"] = channel
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _check_idempotency_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > 255:
        raise InputError(
            "Idempotency-Key must be 1 to 255 characters",
            detail={"field": "Idempotency-Key", "reason": "length"},
        )
    return key


def _resolve_category(router: Router, code: str) -> CategoryRoute:
    """The category route; ``UnknownCategoryError`` listing the known codes."""
    try:
        return router.category(code)
    except UnknownCategoryError:
        known = [c.code for c in router.snapshot.profile.categories]
        raise UnknownCategoryError(
            f"unknown category {code!r}; known categories: {', '.join(known) or 'none'}",
            detail={"field": "category", "reason": "unknown category", "known": known},
        ) from None


def _decision(
    route: RouteResult,
    versions: Mapping[str, str],
    located: Located,
    flags: list[str],
    request_id: str | None,
) -> dict[str, Any]:
    """The full routing decision to keep with a report: the routing answer and its context."""
    decision = route_answer_dict(route, request_id)
    decision["agency"] = route.category.agency if route.category is not None else None
    decision["versions"] = dict(versions)
    decision["location"] = {
        "source": located.source,
        "confidence": located.confidence,
        "label": located.label,
    }
    decision["flags"] = list(flags)
    return decision


def _check_status(status: str, resolution: str | None) -> None:
    if status not in STATUSES:
        raise InputError(
            f"unknown status {status!r}; statuses: {', '.join(STATUSES)}",
            detail={"field": "status", "reason": "unknown status"},
        )
    if resolution is not None and resolution not in RESOLUTIONS:
        raise InputError(
            f"unknown resolution {resolution!r}; resolutions: {', '.join(RESOLUTIONS)}",
            detail={"field": "resolution", "reason": "unknown resolution"},
        )
    if status == "closed" and resolution is None:
        raise InputError(
            f"closing a report needs a resolution ({', '.join(RESOLUTIONS)})",
            detail={"field": "resolution", "reason": "required when closing"},
        )
    if status != "closed" and resolution is not None:
        raise InputError(
            "a resolution is given only when closing a report",
            detail={"field": "resolution", "reason": "only when closing"},
        )


def _transition_check(report_id: str, status: str, actor: Actor | None) -> Callable[[str], None]:
    """A check of the move from the current status to ``status`` (run with the row locked)."""

    def check(current: str) -> None:
        if (current, status) not in TRANSITIONS:
            allowed = sorted(to for frm, to in TRANSITIONS if frm == current)
            raise InputError(
                f"report {report_id!r} cannot go from {current!r} to {status!r}; "
                f"from {current!r} it may go to: {', '.join(allowed)}",
                detail={"field": "status", "reason": "transition not allowed", "current": current},
            )
        if current == "closed" and (actor is None or actor.role != "admin"):
            raise PermissionDeniedError(
                f"only an admin may reopen closed report {report_id!r}",
                detail={"current": current},
            )

    return check


@dataclass(frozen=True, slots=True)
class _Draft:
    """What one request files: checked input, channel and number, its filer and the id."""

    report_in: ReportInput
    channel: str
    phone: PhoneNumber | None
    actor: Actor | None
    request_id: str | None
    report_id: str


def _not_found(report_id: str) -> NotFoundError:
    return NotFoundError(f"report {report_id!r} not found", detail={"id": report_id})


@dataclass
class ReportService:
    """Report intake over the store's report tables.

    Parameters
    ----------
    reports
        The reports' repository (migration 0002 applied).
    locator
        Locates reports (given point, geocoded address, registered caller's home).
    router_source
        A ``Router`` or a callable returning the current one (routers are swapped).
    secrets
        Hashes (through :class:`PhoneNumber`), encrypts and decrypts reporter phones.
    region
        Default phone region for numbers without a country code.
    rate_limit_per_hour
        Reports per number and hour before non-emergency reports are refused.
    clock
        Returns the current UTC time (tests pass a fake).
    k
        Responders kept per facility type in the decision.
    idempotency_ttl
        How long an Idempotency-Key replays its first answer. After that the key is free
        again (a new report), and expired keys are purged on the next idempotent write.
    audit
        Records each read of a reporting number's registration (``registry_locate``). It
        never refuses a report: when the audit log is down the record goes to its fallback.
    pending
        Where emergency reports go while the store is unavailable; None: nowhere (the
        ``StoreUnavailableError`` is raised for them too).
    """

    reports: ReportsRepo
    locator: Locator
    router_source: RouterSource
    secrets: Secrets
    _: KW_ONLY
    region: str = "ID"
    rate_limit_per_hour: int = 20
    clock: Callable[[], datetime] = utcnow
    k: int = 3
    idempotency_ttl: timedelta = timedelta(hours=24)
    audit: AuditService | None = None
    pending: PendingReports | None = None

    def __post_init__(self) -> None:
        if self.idempotency_ttl <= timedelta(0):
            raise ValueError(f"idempotency_ttl must be positive, got {self.idempotency_ttl}")
        # Reports at a registered caller's home, and the home itself, are sealed with the
        # service's secrets.
        self.reports = self.reports.sealed_with(self.secrets)
        located_by = self.locator.subscribers.sealed_with(self.secrets)
        self.locator = Locator(located_by, self.locator.geocoder)

    @property
    def router(self) -> Router:
        """The current router."""
        return router_getter(self.router_source)()

    # ---------------------------------------------------------------- create

    def create(
        self,
        payload: ReportInput | Mapping[str, object],
        *,
        actor: Actor | None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> Report:
        """Locate, route, screen and store a new report (in one transaction).

        Parameters
        ----------
        payload
            The report (a ``ReportInput`` or a mapping validated into one).
        actor
            Who files it; an intake key bound to a channel may only file on that channel.
        idempotency_key
            Optional; the same key with the same body returns the first answer.
        request_id
            The id of the request filing it, kept in the decision.

        Raises
        ------
        InputError
            No usable location, weak geocoder match (``detail['candidates']``), bad fields.
        UnknownCategoryError, InvalidPhoneError, InvalidCoordinatesError
            As named.
        IdempotencyConflictError
            The key was used before with a different body.
        RateLimitedError
            A non-emergency report from a number over its hourly limit.
        StoreUnavailableError
            The store is unavailable and the report is not an emergency (or there is no
            journal, or an emergency cannot be located without the registry).
        """
        report_in = payload if isinstance(payload, ReportInput) else ReportInput.parse(payload)
        return self._file(report_in, actor, idempotency_key, request_id)[0]

    def file(
        self,
        payload: ReportInput,
        *,
        actor: Actor | None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> FiledReport:
        """:meth:`create`, with the answer ``actor`` may see (the number shown from the
        request, never decrypted); ``pending`` when it was journaled."""
        report, phone, pending = self._file(payload, actor, idempotency_key, request_id)
        return FiledReport(report, self.view(report, actor, phone), pending)

    def _file(
        self,
        report_in: ReportInput,
        actor: Actor | None,
        idempotency_key: str | None,
        request_id: str | None,
    ) -> tuple[Report, PhoneNumber | None, bool]:
        channel = self._channel(report_in, actor)
        phone = self._phone(report_in.reporter_phone)
        entry = None
        if idempotency_key is not None:
            entry = IdempotencyEntry(
                _check_idempotency_key(idempotency_key),
                _actor_id(actor),
                _request_hash(report_in, channel),
                self.clock() - self.idempotency_ttl,  # older keys have expired
            )
        # One id for both attempts: when the store fails after committing (a lost answer),
        # the journaled copy has the stored report's id and its replay skips it.
        draft = _Draft(report_in, channel, phone, actor, request_id, new_report_id())
        try:
            report = self._file_in_store(draft, entry)
            # A retry answered from the journal is still pending.
            return report, phone, report.status == PENDING_STORE
        except StoreUnavailableError:
            emergency = _resolve_category(self.router, report_in.category).emergency
            if self.pending is None or not emergency:
                raise
        # An emergency is never refused: routed from memory and journaled.
        report = self._new_report(draft, offline=True)
        pending = self.pending.add(report, actor=_actor_label(actor), idempotency=entry)
        return pending, phone, True

    def _file_in_store(self, draft: _Draft, entry: IdempotencyEntry | None) -> Report:
        if entry is not None:
            replay = self._replay(entry)
            if replay is not None:
                return replay
        report = self._new_report(draft)
        try:
            written = self.reports.insert(
                report,
                actor=_actor_label(draft.actor),
                idempotency=entry,
                window=self._window(report),
            )
        except RateLimitedError:
            # A concurrent request with the same key may have filed it first: answer as it did.
            replay = self._replay(entry) if entry is not None else None
            if replay is None:
                raise
            return replay
        if not written:
            # A concurrent request with the same Idempotency-Key won the race: answer as it did.
            replay = self._replay(entry) if entry is not None else None
            if replay is None:
                raise RuntimeError("the report was refused by a constraint of the store")
            return replay
        return report

    def _window(self, report: Report) -> NumberWindow | None:
        """The per-number rate limit of ``report``, decided inside its write transaction.

        Over the limit, a non-emergency report is refused (``RateLimitedError``) and an
        emergency is stored with the ``rate_limited`` flag: emergencies are never refused.
        """
        if report.reporter_phone_hash is None:
            return None
        now = report.created_at

        def admit(recent: builtins.list[datetime]) -> None:
            retry_after = self._retry_after(recent, now)
            if retry_after is None:
                return
            if not report.emergency:
                raise RateLimitedError(
                    f"this number filed {self.rate_limit_per_hour} or more reports in the last "
                    f"hour; retry in {retry_after} s (emergency categories are never limited)",
                    retry_after_s=retry_after,
                    detail={"limit_per_hour": self.rate_limit_per_hour},
                )
            if "rate_limited" not in report.flags:
                report.flags.append("rate_limited")
                report.decision["flags"] = builtins.list(report.flags)

        return NumberWindow(
            report.reporter_phone_hash, now - RATE_WINDOW, self.rate_limit_per_hour, admit
        )

    def _new_report(self, draft: _Draft, *, offline: bool = False) -> Report:
        """Locate, screen and route a report (nothing is written).

        ``offline``: the store is unavailable; the registry and the screening are used when
        they still answer (a full disk still reads), skipped otherwise.
        """
        report_in, phone, actor = draft.report_in, draft.phone, draft.actor
        router = self.router
        category = _resolve_category(router, report_in.category)
        now = self.clock()
        caller, flags = self._caller_and_flags(phone, category, now, offline=offline)
        report = Report(
            id=draft.report_id,
            channel=draft.channel,
            category=category.code,
            description=report_in.description,
            status="open",
            resolution=None,
            lon=None,
            lat=None,
            location_source="registered_caller",
            location_confidence=None,
            reporter_phone_hash=phone.hash if phone is not None else None,
            reporter_phone_enc=self.secrets.encrypt(phone.e164) if phone is not None else None,
            media_url=report_in.media_url,
            decision={},
            zones={},
            flags=flags,
            api_key_id=actor.id if actor is not None else None,
            created_at=now,
            updated_at=now,
            closed_at=None,
        )
        point = report_in.location
        unlocatable = point is None and report_in.address is None
        if offline and caller is None and phone is not None and unlocatable:
            # Only the registry could locate it, and it is unreachable: taken now, located
            # and routed when the journal replays it (:meth:`locate_journaled`).
            decision = unlocated_decision(category, router.snapshot.versions, draft.request_id)
            return replace(report, decision=decision)
        located = self.locator.locate(
            point=(point.lon, point.lat) if point is not None else None,
            address=report_in.address,
            caller=caller,
        )
        self._audit_registry_read(caller, category, located, draft.report_id, actor)
        return self._routed(report, router, located, draft.request_id)

    def _routed(
        self, report: Report, router: Router, located: Located, request_id: str | None
    ) -> Report:
        """``report`` at ``located``, routed by ``router``, its decision kept."""
        route = route_located(router, located, category=report.category, k=self.k)
        flags = list(report.flags)
        flags.extend(str(w) for w in route.warnings if str(w) not in flags)
        return replace(
            report,
            lon=located.lon,
            lat=located.lat,
            location_source=located.source,
            location_confidence=located.confidence,
            decision=_decision(route, router.snapshot.versions, located, flags, request_id),
            zones={name: m.zone_id for name, m in route.zones.items() if m.zone_id is not None},
            flags=flags,
        )

    def locate_journaled(self, report: Report) -> Report:
        """A report as it is stored from the journal: one taken unlocated (only the registry
        could locate it, and it was unreachable) is located and routed now; any other is
        returned as it is.

        A caller that is not registered (or has no home) leaves it unlocated, flagged
        ``unregistered_caller``: still stored, never dropped.
        """
        if not needs_locating(report) or report.reporter_phone_enc is None:
            return report
        router = self.router
        category = _resolve_category(router, report.category)
        phone = PhoneNumber.parse(
            self.secrets.decrypt(report.reporter_phone_enc), self.region, self.secrets
        )
        caller, flags = self._caller_and_flags(phone, category, report.created_at, offline=False)
        request_id = report.decision.get("request_id")
        try:
            located = self.locator.locate(caller=caller)
        except InputError:
            decision = {**report.decision, "flags": flags}
            decision.pop(LOCATE_ON_REPLAY, None)
            return replace(report, flags=flags, decision=decision)
        self._audit_registry_read(caller, category, located, report.id, None)
        return self._routed(replace(report, flags=flags), router, located, request_id)

    def _caller_and_flags(
        self, phone: PhoneNumber | None, category: CategoryRoute, now: datetime, *, offline: bool
    ) -> tuple[Caller | None, list[str]]:
        """The caller's registration and the screening flags (skipped offline if unreadable)."""
        caller = None
        try:
            caller = self.locator.caller(phone) if phone is not None else None
            return caller, self._screen(caller)
        except StoreUnavailableError:
            if not offline:
                raise
            return caller, []

    def _audit_registry_read(
        self,
        caller: Caller | None,
        category: CategoryRoute,
        located: Located,
        report_id: str,
        actor: Actor | None,
    ) -> None:
        """Audit the read of a registered caller's record; fails safe (never refuses)."""
        if self.audit is None or caller is None or caller.registration is None:
            return
        self.audit.record(
            "registry_locate",
            "emergency_location" if category.emergency else "report_location",
            actor,
            [f"subscriber:{caller.registration.subscriber_id}", f"report:{report_id}"],
            {"located_at_home": located.source == "registered_caller", "category": category.code},
            fail_closed=False,
        )

    def _phone(self, text: str | None) -> PhoneNumber | None:
        return None if text is None else PhoneNumber.parse(text, self.region, self.secrets)

    def _replay(self, entry: IdempotencyEntry) -> Report | None:
        """The first answer for an unexpired idempotency key; conflict when the body differs.

        A report still in the journal answers first: a retry after the store came back
        must not file it again before the replay.
        """
        stored: StoredAnswer | None = None
        if self.pending is not None:
            stored = self.pending.answer(entry)
        if stored is None:
            stored = self.reports.replay(entry.key, entry.owner, entry.expired_before)
        if stored is None:
            return None
        if stored.request_hash != entry.request_hash:
            raise IdempotencyConflictError(
                f"Idempotency-Key {entry.key!r} was already used with a different request body",
                detail={"field": "Idempotency-Key", "reason": "reused with a different body"},
            )
        return stored.report

    def _channel(self, payload: ReportInput, actor: Actor | None) -> str:
        """The report's channel: the payload's, else the key's; must match a bound key."""
        bound = _channel_scope(actor)
        channel = payload.channel or bound or (actor.channel if actor is not None else None)
        if channel is None:
            raise InputError(
                f"channel is required (one of {', '.join(CHANNELS)}): this key has none",
                detail={"field": "channel", "reason": "required"},
            )
        if bound and channel != bound:
            raise PermissionDeniedError(
                f"this key files reports on channel {bound!r} only, not {channel!r}",
                detail={"channel": channel, "allowed_channel": bound},
            )
        return channel

    def _screen(self, caller: Caller | None) -> list[str]:
        """Abuse-screening flags of the caller (the rate limit is decided at the write)."""
        if caller is None:
            return []
        flags: list[str] = []
        if not caller.registered:
            flags.append("unregistered_caller")
        if self.reports.nuisance(caller.phone.hash).false_reports >= REPEAT_FALSE_THRESHOLD:
            flags.append("repeat_false_reports")
        return flags

    def _retry_after(self, recent: builtins.list[datetime], now: datetime) -> int | None:
        """Seconds until the number is under its hourly limit again; None when it is now.

        ``recent``: creation times of its newest reports in the window, newest first.
        """
        if len(recent) < self.rate_limit_per_hour:
            return None
        # Once the limit-th newest report leaves the window, the count drops below the limit.
        wait = (recent[self.rate_limit_per_hour - 1] + RATE_WINDOW - now).total_seconds()
        return max(1, math.ceil(wait))

    # ---------------------------------------------------------------- read

    def get(self, report_id: str, *, actor: Actor | None) -> Report:
        """One report; ``NotFoundError`` when missing or on another channel than the key's.

        A report still in the journal is answered from there, status ``pending_store``
        (also while the store is unavailable: ``StoreUnavailableError`` for the others).
        """
        scope = _channel_scope(actor)
        try:
            report = self._readable(actor).get(report_id, channel_scope=scope)
        except StoreUnavailableError:
            report = self._pending_report(report_id, scope)
            if report is None:
                raise
        if report is None:
            report = self._pending_report(report_id, scope)
        if report is None:
            raise _not_found(report_id)
        return report

    def _pending_report(self, report_id: str, scope: str | None) -> Report | None:
        """The journaled report ``report_id`` if the actor's channel may see it."""
        report = self.pending.get(report_id) if self.pending is not None else None
        if report is None or (scope is not None and report.channel != scope):
            return None
        return report

    def list(self, filters: ReportFilters | None = None, *, actor: Actor | None) -> Page:
        """Reports matching ``filters`` that ``actor`` may see, newest first."""
        filters = filters or ReportFilters.parse()
        repo = self._readable(actor)
        items, total = repo.page(filters.query(), channel_scope=_channel_scope(actor))
        return Page(items=items, total=total, limit=filters.limit, offset=filters.offset)

    def _readable(self, actor: Actor | None) -> ReportsRepo:
        """The repository ``actor`` reads through: one that cannot open a caller's home
        unless the actor may see the registry (so an analyst's read decrypts nothing)."""
        return self.reports if shows_registry(actor) else ReportsRepo(self.reports.engine)

    def history(self, report_id: str, *, actor: Actor | None = None) -> builtins.list[StatusChange]:
        """Every status change of a report, oldest first (creation included)."""
        self.get(report_id, actor=actor)  # 404 for unknown or invisible reports
        return self.reports.history(report_id)

    # ---------------------------------------------------------------- views

    def view(
        self, report: Report, actor: Actor | None, phone: PhoneNumber | None = None
    ) -> dict[str, Any]:
        """The answer ``actor`` may see (see :func:`report_dict`).

        The stored hash and ciphertext never leave the service. Admin and intake keys see
        the reporter's number as ``reporter_phone`` (masked for intake), taken from
        ``phone`` when the caller has it at hand, else decrypted; other roles see no phone,
        and see a report at a registered caller's home only at its zone's public point
        (:func:`~geo_router.intake.reports.models.public_point`).
        """
        role = actor.role if actor is not None else None
        if not shows_registry(actor):
            # A caller's home is registry data: shown only at its zone's public point.
            snapshot = (
                self.router.snapshot if report.location_source == "registered_caller" else None
            )
            return report_dict(report, registry=False, snapshot=snapshot)
        if role not in _PHONE_ROLES or report.reporter_phone_enc is None:
            return report_dict(report)
        if phone is not None:
            shown = phone.e164 if role == "admin" else phone.masked
        else:
            e164 = self.secrets.decrypt(report.reporter_phone_enc)
            shown = e164 if role == "admin" else mask_phone(e164)
        return report_dict(report, shown)

    def view_page(self, page: Page, actor: Actor | None) -> dict[str, Any]:
        """A page as ``actor`` may see it (see :meth:`view`)."""
        return {
            "items": [self.view(item, actor) for item in page.items],
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }

    # ---------------------------------------------------------------- lifecycle

    def update_status(
        self,
        report_id: str,
        status: str,
        *,
        resolution: str | None = None,
        note: str | None = None,
        actor: Actor | None,
    ) -> Report:
        """Move a report along open -> acknowledged -> in_progress -> closed.

        Also open -> closed and acknowledged -> closed; closing needs a ``resolution``;
        only an admin may reopen (closed -> open). Every change is kept in the history.

        Raises
        ------
        InputError
            Unknown status/resolution, a transition that is not allowed, closing without a
            resolution or a resolution when not closing.
        PermissionDeniedError
            Reopening by a non-admin.
        NotFoundError
            Unknown report, or one the actor may not see.
        """
        _check_status(status, resolution)
        changed = self.reports.change_status(
            report_id,
            status,
            resolution=resolution,
            note=note,
            actor=_actor_label(actor),
            at=self.clock(),
            check=_transition_check(report_id, status, actor),
            channel_scope=_channel_scope(actor),
        )
        if not changed:
            raise _not_found(report_id)
        return self.get(report_id, actor=actor)
