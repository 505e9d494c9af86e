"""Erasing personal data: reports past their retention, a subscriber on request.

A report's personal fields (:data:`~geo_router.store.schema.REPORT_PERSONAL_COLUMNS`: who
reported, their sealed home point, free text and media) are set to NULL, the notes of its
history are dropped and the answers recorded for its idempotency keys (which repeat those
fields) are deleted; the report itself stays, with its category, channel, zones, times,
status and scrubbed decision, so statistics by zone and time are unchanged. Erasing a
subscriber deletes its row and does the same to every report made from its number, in one
transaction. Each step only touches rows that still hold something, so running it again
erases nothing more and counts zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from geo_router.store.engine import write_transaction
from geo_router.store.schema import (
    REPORT_PERSONAL_COLUMNS,
    idempotency_keys,
    report_updates,
    reports,
    subscribers,
)

__all__ = [
    "ErasedReports",
    "SubscriberErasure",
    "erase_number",
    "erase_subscriber",
    "purge_reports",
]

#: The one history note that is not free text (written when a report is filed).
_SYSTEM_NOTE = "created"


@dataclass(frozen=True, slots=True)
class ErasedReports:
    """What an erasure changed: reports whose personal fields went, answers deleted."""

    reports: int
    idempotency_keys: int


@dataclass(frozen=True, slots=True)
class SubscriberErasure:
    """An erased subscriber (None: the number was not registered) and its erased reports."""

    subscriber_id: str | None
    reports: ErasedReports


def _holds_personal_data() -> sa.ColumnElement[bool]:
    return sa.or_(*(reports.c[name].is_not(None) for name in REPORT_PERSONAL_COLUMNS))


def _erase_reports(conn: sa.Connection, condition: sa.ColumnElement[bool]) -> ErasedReports:
    """Erase the personal fields of the reports matching ``condition`` (one transaction)."""
    chosen = sa.select(reports.c.id).where(condition, _holds_personal_data()).scalar_subquery()
    answers = conn.execute(
        idempotency_keys.delete().where(idempotency_keys.c.report_id.in_(chosen))
    )
    u = report_updates.c
    conn.execute(
        report_updates.update()
        .where(u.report_id.in_(chosen), u.note.is_not(None), u.note != _SYSTEM_NOTE)
        .values(note=None)
    )
    cleared = {name: None for name in REPORT_PERSONAL_COLUMNS}
    done = conn.execute(reports.update().where(condition, _holds_personal_data()).values(**cleared))
    return ErasedReports(int(done.rowcount), int(answers.rowcount))


def purge_reports(engine: sa.Engine, *, before: datetime) -> ErasedReports:
    """Erase the personal fields of every report last changed before ``before`` (UTC-aware).

    Retention counts from a report's last change, so a report still being worked on keeps
    the number to call back.
    """
    with write_transaction(engine) as conn:
        return _erase_reports(conn, reports.c.updated_at < before)


def erase_subscriber(engine: sa.Engine, subscriber_id: str) -> SubscriberErasure | None:
    """Delete a subscriber and erase the personal fields of every report from its number.

    Returns
    -------
    SubscriberErasure | None
        None when no such subscriber exists (nothing is changed).
    """
    s = subscribers.c
    with write_transaction(engine) as conn:
        phone_hash = conn.execute(
            sa.select(s.phone_hash).where(s.id == subscriber_id).with_for_update()
        ).scalar_one_or_none()
        if phone_hash is None:
            return None
        erased = _erase_reports(conn, reports.c.reporter_phone_hash == phone_hash)
        conn.execute(subscribers.delete().where(s.id == subscriber_id))
    return SubscriberErasure(subscriber_id, erased)


def erase_number(engine: sa.Engine, phone_hash: str) -> SubscriberErasure:
    """Erase everything that names a number (by HMAC): its subscriber, if registered, and
    the personal fields of every report from it (registered or not), in one transaction."""
    s = subscribers.c
    with write_transaction(engine) as conn:
        subscriber_id = conn.execute(
            sa.select(s.id).where(s.phone_hash == phone_hash).with_for_update()
        ).scalar_one_or_none()
        erased = _erase_reports(conn, reports.c.reporter_phone_hash == phone_hash)
        if subscriber_id is not None:
            conn.execute(subscribers.delete().where(s.id == subscriber_id))
    return SubscriberErasure(subscriber_id, erased)
