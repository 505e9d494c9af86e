"""The audit queue: batches, flushes, counts what a full queue drops, survives a bad sink."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from geo_router.intake.audit import AuditService
from geo_router.intake.audit_queue import AuditQueue
from geo_router.store.audit_repo import AuditRecord, AuditRepo


def _record(n: int) -> AuditRecord:
    return AuditRecord(
        record_id=f"r{n}",
        at=datetime(2026, 12, 1, tzinfo=UTC),
        actor="anonymous",
        key_id=None,
        action="auth_failure",
        purpose="access_control",
        detail={"status": 401},
    )


def _summary(example: AuditRecord, n: int) -> AuditRecord:
    return AuditRecord(
        "summary", example.at, "audit-queue", None, example.action, "x", (), {"n": n}
    )


def test_submitted_records_are_written_in_order_in_batches() -> None:
    batches: list[list[str]] = []
    q = AuditQueue(lambda b: batches.append([r.record_id for r in b]), _summary)
    for n in range(1200):
        q.submit(_record(n))
    assert q.flush(30)
    assert [rid for batch in batches for rid in batch] == [f"r{n}" for n in range(1200)]
    assert all(len(batch) <= 500 for batch in batches)


def test_a_full_queue_counts_what_it_drops() -> None:
    gate = threading.Event()
    written: list[AuditRecord] = []

    def slow(batch: Sequence[AuditRecord]) -> None:
        gate.wait(30)
        written.extend(batch)

    q = AuditQueue(slow, _summary, capacity=5)
    q.submit(_record(0))  # taken by the writer, which then waits at the gate
    for _ in range(200):  # let the writer take it before the queue fills
        if q._queue.empty():
            break
        threading.Event().wait(0.01)
    for n in range(1, 21):
        q.submit(_record(n))
    gate.set()
    assert q.flush(30)
    ids = [r.record_id for r in written]
    assert ids[:6] == ["r0", "r1", "r2", "r3", "r4", "r5"]
    assert ids[-1] == "summary" and written[-1].detail == {"n": 15}


def test_a_failing_sink_does_not_stop_the_writer() -> None:
    seen: list[str] = []

    def flaky(batch: Sequence[AuditRecord]) -> None:
        if batch[0].record_id == "r0":
            raise RuntimeError("bug")
        seen.extend(r.record_id for r in batch)

    q = AuditQueue(flaky, _summary)
    q.submit(_record(0))
    assert q.flush(30)
    q.submit(_record(1))
    assert q.flush(30) and seen == ["r1"]


def test_the_service_submits_through_the_queue(migrated_engine: sa.Engine) -> None:
    audit = AuditService(AuditRepo(migrated_engine))
    assert audit.flush()  # nothing submitted yet
    for _ in range(3):
        audit.submit("auth_failure", "access_control", None, (), {"status": 401})
    audit.close()
    check = audit.verify()
    assert check.intact and check.count == 3
