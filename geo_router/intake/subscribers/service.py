"""The caller registry: who a phone number belongs to, where they live, who serves them.

Numbers are parsed once into a :class:`~geo_router.intake.phones.PhoneNumber` (E.164, masked,
HMAC); names and addresses are sealed with ``Secrets`` before they reach the repository and
opened only for answers that show them. Nothing here logs a number, a name or an address.
"""

from __future__ import annotations

import builtins
import logging
from dataclasses import replace
from datetime import datetime
from enum import Enum
from typing import Final, Literal

from geo_router.city.models import RouteResult
from geo_router.encoding.json import route_result_dict
from geo_router.errors import InputError, NotFoundError
from geo_router.intake.audit import AuditService, Who, phone_subject
from geo_router.intake.locate import AddressGeocoder, Located, Locator, route_located
from geo_router.intake.phones import PhoneNumber, mask_phone
from geo_router.intake.router_source import RouterSource, router_getter
from geo_router.intake.secrets import Secrets
from geo_router.intake.subscribers.csv_import import CsvSource, ImportSummary, import_csv
from geo_router.intake.subscribers.models import (
    MAX_OFFSET,
    MAX_PAGE,
    RESPONDERS_K,
    CallerInfo,
    Subscriber,
    SubscriberPage,
    check_consent,
    check_verification,
    clean_text,
    facts_of,
    given_point,
    new_subscriber_row,
    rehome,
)
from geo_router.store.erasure import SubscriberErasure, erase_number, erase_subscriber
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.schema import AuditAction, AuditPurpose, utcnow
from geo_router.store.subscribers_repo import SubscriberRow, SubscribersRepo

__all__ = ["UNSET", "SubscriberService"]

log = logging.getLogger(__name__)


class _Unset(Enum):
    UNSET = "unset"


#: "Leave this field as it is" in :meth:`SubscriberService.update`.
UNSET: Final = _Unset.UNSET
_Keep = Literal[_Unset.UNSET]


class SubscriberService:
    """Register callers and answer "who is calling?".

    Parameters
    ----------
    subscribers
        The subscribers' repository.
    reports
        The reports' repository (a caller's nuisance record).
    secrets
        Pepper and encryption key.
    router
        The current ``Router``, or a zero-argument callable returning it.
    geocoder
        The city's geocoder; None disables address lookup.
    region
        Region for national phone numbers.
    audit
        Records every read of registry data (:meth:`get`, :meth:`page`, :meth:`caller`)
        before it is answered; when the audit log cannot be written the read fails closed
        (``AuditUnavailableError``). None audits nothing (library use, tests).
    """

    def __init__(
        self,
        subscribers: SubscribersRepo,
        reports: ReportsRepo,
        secrets: Secrets,
        router: RouterSource,
        geocoder: AddressGeocoder | None = None,
        *,
        region: str = "ID",
        audit: AuditService | None = None,
    ) -> None:
        # The repositories seal and open home points with the same secrets.
        self.subscribers = subscribers.sealed_with(secrets)
        self.reports = reports.sealed_with(secrets)
        self.secrets = secrets
        self.router = router_getter(router)
        self.locator = Locator(self.subscribers, geocoder)
        self.region = region
        self.audit = audit

    # -- reading ---------------------------------------------------------------------------

    def get(
        self, subscriber_id: str, *, reveal: bool = False, actor: Who | None = None
    ) -> Subscriber:
        """One subscriber by id, audited as read by ``actor``; NotFoundError when unknown."""
        row = self._row(subscriber_id)
        self._audit_read("subscriber_read", actor, [row.id])
        return self._answer(row, reveal)

    def get_by_phone(self, phone: str, *, reveal: bool = False) -> Subscriber | None:
        """The subscriber with this phone number (any format), or None when not registered.

        Raises
        ------
        InvalidPhoneError
            The number does not parse.
        """
        number = self._phone(phone)
        row = self.subscribers.by_hash(number.hash)
        return None if row is None else self._answer(row, reveal, number)

    def list(
        self, limit: int = 50, offset: int = 0, *, reveal: bool = False
    ) -> builtins.list[Subscriber]:
        """A page of subscribers, oldest first."""
        if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
            raise InputError(
                f"limit must be 1..{MAX_PAGE} and offset 0..{MAX_OFFSET}",
                detail={"field": "limit" if not 1 <= limit <= MAX_PAGE else "offset"},
            )
        return [self._answer(row, reveal) for row in self.subscribers.page(limit, offset)]

    def count(self) -> int:
        """How many subscribers are registered."""
        return self.subscribers.count()

    def page(
        self, limit: int = 50, offset: int = 0, *, reveal: bool = False, actor: Who | None = None
    ) -> SubscriberPage:
        """A page of subscribers, oldest first, with the total count, audited as read by
        ``actor``."""
        items = self.list(limit, offset, reveal=reveal)
        page = SubscriberPage(items, self.count(), limit, offset)
        self._audit_read(
            "subscriber_list",
            actor,
            [sub.id for sub in items],
            {"limit": limit, "offset": offset, "total": page.total},
        )
        return page

    def caller(self, phone: str, *, actor: Who | None = None) -> CallerInfo:
        """Who is calling: location, zones and responders now, and the nuisance record.

        Never fails for an unknown number (``registered=False``); a malformed number raises
        InvalidPhoneError. The lookup is audited (subscriber id, or the number's hash when it
        is not registered) before anything is answered.
        """
        number = self._phone(phone)
        nuisance = self.reports.nuisance(number.hash)
        row = self.subscribers.by_hash(number.hash)
        subject = phone_subject(number.hash) if row is None else f"subscriber:{row.id}"
        self._audit_read("caller_lookup", actor, [subject], {"registered": row is not None})
        if row is None:
            return CallerInfo(registered=False, phone=number.masked, nuisance=nuisance)
        home = row.home
        answer = {}
        if home is not None:
            answer = route_result_dict(self.router().route(home.lon, home.lat, k=RESPONDERS_K))
        return CallerInfo(
            registered=True,
            phone=number.masked,
            nuisance=nuisance,
            subscriber_id=row.id,
            name=self._open(row.name_enc),
            address=self._open(row.address_enc),
            location=home,
            zones=answer.get("zones", {}),
            responders=answer.get("responders", {}),
            warnings=answer.get("warnings", []),
            verification_status=row.verification_status,
        )

    # -- writing ---------------------------------------------------------------------------

    def create(
        self,
        phone: str,
        *,
        name: str | None = None,
        address: str | None = None,
        lon: float | None = None,
        lat: float | None = None,
        verification_status: str = "unverified",
        verification_method: str | None = None,
        consent_at: datetime | None = None,
        reveal: bool = False,
    ) -> Subscriber:
        """Register a caller; the zones and nearest responders are resolved now and stored.

        A given location wins; else the address is geocoded (a confident match only).

        Raises
        ------
        InvalidPhoneError
            The number does not parse (``detail['reason']``).
        InputError
            Duplicate number (``detail['code'] == 'duplicate_phone'``); no location and no
            geocodable address; a weak address match (``detail['candidates']``); bad fields.
        InvalidCoordinatesError
            Unusable lon/lat.
        """
        number = self._phone(phone)
        texts = clean_text(name, "name"), clean_text(address, "address")
        verification = (
            check_verification(verification_status),
            clean_text(verification_method, "verification_method"),
            check_consent(consent_at),
        )
        located = self.locator.locate(point=given_point(lon, lat), address=texts[1])
        row = new_subscriber_row(
            self.secrets,
            number,
            texts,
            located,
            self._route(located),
            now=utcnow(),
            verification=verification,
        )
        self.subscribers.insert([row])
        log.info("registered subscriber %s (%s)", row.id, located.source)
        return self._answer(row, reveal, number, texts)

    def update(
        self,
        subscriber_id: str,
        *,
        reveal: bool = False,
        phone: str | _Keep = UNSET,
        name: str | _Keep | None = UNSET,
        address: str | _Keep | None = UNSET,
        lon: float | _Keep | None = UNSET,
        lat: float | _Keep | None = UNSET,
        verification_status: str | _Keep = UNSET,
        verification_method: str | _Keep | None = UNSET,
        consent_at: datetime | _Keep | None = UNSET,
    ) -> Subscriber:
        """Change fields of a subscriber; a new location or address re-resolves the zones.

        ``lon`` and ``lat`` come together (both None clears a given location, and the
        address is geocoded). A new address is geocoded unless the subscriber has a given
        location, which wins.

        Raises
        ------
        NotFoundError, InputError, InvalidPhoneError, InvalidCoordinatesError
        """
        row = self._row(subscriber_id)
        if phone is not UNSET:
            number = self._phone(phone)
            row = replace(row, phone_hash=number.hash, phone_enc=self.secrets.encrypt(number.e164))
        if name is not UNSET:
            row = replace(row, name_enc=self._seal(clean_text(name, "name")))
        if address is not UNSET:
            address = clean_text(address, "address")
            row = replace(row, address_enc=self._seal(address))
        if verification_status is not UNSET:
            row = replace(row, verification_status=check_verification(verification_status))
        if verification_method is not UNSET:
            method = clean_text(verification_method, "verification_method")
            row = replace(row, verification_method=method)
        if consent_at is not UNSET:
            row = replace(row, consent_at=check_consent(consent_at))
        located = self._relocate(row, lon, lat, address)
        if located is not None:
            row = rehome(row, located, self._route(located))
        if not self.subscribers.save(replace(row, updated_at=utcnow())):
            raise self._not_found(subscriber_id)
        log.info("updated subscriber %s", subscriber_id)
        return self._answer(self._row(subscriber_id), reveal)

    def delete(self, subscriber_id: str) -> None:
        """Remove a subscriber; NotFoundError when unknown."""
        if not self.subscribers.delete(subscriber_id):
            raise self._not_found(subscriber_id)
        log.info("deleted subscriber %s", subscriber_id)

    def erase(
        self, *, subscriber_id: str | None = None, phone: str | None = None
    ) -> SubscriberErasure:
        """Erase a subscriber with everything that names them (a data subject's request).

        By id, the subscriber row goes with its sealed fields, and the reports made from its
        number lose their personal fields (number, its HMAC, home point, description,
        media, notes; see ``store.erasure``); the reports stay for statistics by zone. By
        number, the same, and the reports of a number that is not registered are erased
        too (``subscriber_id`` None in the answer). Afterwards a lookup of the number finds
        nothing and no row holds its HMAC.

        Raises
        ------
        InputError
            Neither or both of ``subscriber_id`` and ``phone``.
        InvalidPhoneError
            The number does not parse.
        NotFoundError
            No subscriber with ``subscriber_id``.
        """
        if (subscriber_id is None) == (phone is None):
            raise InputError(
                "give either a subscriber id or a phone number to erase",
                detail={"field": "id", "reason": "one of id and phone is required"},
            )
        if phone is not None:
            erased = erase_number(self.subscribers.engine, self._phone(phone).hash)
        else:
            found = erase_subscriber(self.subscribers.engine, str(subscriber_id))
            if found is None:
                raise self._not_found(str(subscriber_id))
            erased = found
        log.info(
            "erased subscriber %s and the personal fields of %d reports",
            erased.subscriber_id or "(none registered)",
            erased.reports.reports,
        )
        return erased

    def import_csv(
        self, source: CsvSource, *, dry_run: bool = False, skip_invalid: bool = False
    ) -> ImportSummary:
        """Register many callers from CSV (see :func:`.csv_import.import_csv`)."""
        return import_csv(
            source,
            subscribers=self.subscribers,
            secrets=self.secrets,
            locator=self.locator,
            router=self.router,
            region=self.region,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _audit_read(
        self,
        action: AuditAction,
        actor: Who | None,
        subscriber_ids: builtins.list[str],
        detail: dict[str, object] | None = None,
    ) -> None:
        """Audit a read for display; fails closed (``AuditUnavailableError``)."""
        if self.audit is None:
            return
        subjects = [s if ":" in s else f"subscriber:{s}" for s in subscriber_ids]
        purpose: AuditPurpose = "call_taking" if action == "caller_lookup" else "registry_admin"
        self.audit.record(action, purpose, actor, subjects, detail, fail_closed=True)

    def _phone(self, text: str) -> PhoneNumber:
        return PhoneNumber.parse(text, self.region, self.secrets)

    def _route(self, located: Located) -> RouteResult:
        return route_located(self.router(), located, k=RESPONDERS_K)

    def _row(self, subscriber_id: str) -> SubscriberRow:
        row = self.subscribers.get(subscriber_id)
        if row is None:
            raise self._not_found(subscriber_id)
        return row

    @staticmethod
    def _not_found(subscriber_id: str) -> NotFoundError:
        return NotFoundError(
            f"no subscriber with id {subscriber_id!r}", detail={"id": subscriber_id}
        )

    def _seal(self, text: str | None) -> str | None:
        return None if text is None else self.secrets.encrypt(text)

    def _open(self, token: str | None) -> str | None:
        return None if token is None else self.secrets.decrypt(token)

    def _relocate(
        self,
        row: SubscriberRow,
        lon: float | _Keep | None,
        lat: float | _Keep | None,
        address: str | _Keep | None,
    ) -> Located | None:
        """The new home an update implies, or None when it keeps the current one."""
        if lon is not UNSET or lat is not UNSET:
            point = given_point(None if lon is UNSET else lon, None if lat is UNSET else lat)
            if point is not None:
                return self.locator.locate(point=point)
            # The given location is cleared: fall back on the (new or current) address.
            current = self._open(row.address_enc) if address is UNSET else address
            return self.locator.locate(address=current)
        if address is not UNSET and row.location_source != "given":
            return self.locator.locate(address=address)
        return None

    def _answer(
        self,
        row: SubscriberRow,
        reveal: bool,
        number: PhoneNumber | None = None,
        texts: tuple[str | None, str | None] | None = None,
    ) -> Subscriber:
        """The answer for a row; decrypts only what the caller did not hand in already."""
        if number is None:
            e164 = self.secrets.decrypt(row.phone_enc)
            shown = e164 if reveal else mask_phone(e164)
        else:
            shown = number.e164 if reveal else number.masked
        if texts is None:
            texts = self._open(row.name_enc), self._open(row.address_enc)
        return Subscriber(
            **facts_of(row),
            id=row.id,
            phone=shown,
            name=texts[0],
            address=texts[1],
            phone_revealed=reveal,
        )
