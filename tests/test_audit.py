"""The audit service: verify finds a changed, removed or reordered record; fail closed or safe."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from geo_router.errors import AuditUnavailableError, JournalUnavailableError, StoreUnavailableError
from geo_router.intake.audit import AUDIT_KIND, AuditService, audited_swap, phone_subject
from geo_router.intake.secrets import Secrets
from geo_router.journal import Journal
from geo_router.store.audit_repo import AuditRecord, AuditRepo

SECRETS = Secrets.generate()


@dataclass(frozen=True)
class Key:
    id: str = "key-7"
    name: str = "call-desk"


def _filled(engine: sa.Engine, n: int = 6) -> AuditService:
    audit = AuditService(AuditRepo(engine))
    for i in range(n):
        audit.record(
            "caller_lookup", "call_taking", Key(), [f"subscriber:s{i}"], {"i": i}, fail_closed=True
        )
    return audit


def _sql(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


class DownRepo(AuditRepo):
    """An audit repository whose database is gone."""

    def append(self, records: Any) -> list[int]:
        raise AuditUnavailableError("the audit log cannot be written (OperationalError)")


def test_an_intact_chain_is_counted(migrated_engine: sa.Engine) -> None:
    check = _filled(migrated_engine).verify()
    assert check.intact and check.count == 6 and check.first_bad_seq is None
    empty = AuditService(AuditRepo(migrated_engine))
    _sql(migrated_engine, "DELETE FROM audit_log", "UPDATE audit_head SET seq = 0")
    assert not empty.verify().intact  # the head still remembers the last hash


def test_a_modified_record_is_named(migrated_engine: sa.Engine) -> None:
    audit = _filled(migrated_engine)
    _sql(migrated_engine, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4")
    check = audit.verify()
    assert check.first_bad_seq == 4 and "modified" in (check.reason or "")
    assert check.count == 3


def test_a_modified_record_with_a_recomputed_hash_breaks_the_next_link(
    migrated_engine: sa.Engine,
) -> None:
    audit = _filled(migrated_engine)
    [fourth] = [s for s in audit.export() if s.seq == 4]
    from geo_router.store.audit_repo import chain_hash

    forged = replace(fourth.record, subjects=("subscriber:nobody",))
    digest = chain_hash(4, forged, fourth.prev_hash)
    with migrated_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_log SET subjects = :s, hash = :h WHERE seq = 4"),
            {"s": '["subscriber:nobody"]', "h": digest},
        )
    assert audit.verify().first_bad_seq == 5


def test_a_removed_record_is_named(migrated_engine: sa.Engine) -> None:
    audit = _filled(migrated_engine)
    _sql(migrated_engine, "DELETE FROM audit_log WHERE seq = 3")
    check = audit.verify()
    assert check.first_bad_seq == 3 and "missing" in (check.reason or "")


def test_removing_the_newest_records_is_noticed(migrated_engine: sa.Engine) -> None:
    audit = _filled(migrated_engine)
    _sql(migrated_engine, "DELETE FROM audit_log WHERE seq >= 5")
    check = audit.verify()
    assert check.first_bad_seq == 5 and check.count == 4


def test_reordered_records_are_named(migrated_engine: sa.Engine) -> None:
    """Records 2 and 3 trade places: their sequence numbers are swapped."""
    audit = _filled(migrated_engine)
    _sql(
        migrated_engine,
        "UPDATE audit_log SET seq = 1000 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 1000",
    )
    check = audit.verify()
    assert check.first_bad_seq == 2 and check.count == 1


def _journal(path: Path) -> Journal:
    return Journal(path, SECRETS, preallocate_bytes=64 * 1024)


def _down(engine: sa.Engine, journal: Journal | None) -> AuditService:
    audit = AuditService(DownRepo(engine))
    if journal is not None:
        audit.use_journal(journal)
    return audit


def test_a_display_read_fails_closed(migrated_engine: sa.Engine, tmp_path: Path) -> None:
    journal = _journal(tmp_path / "journal.bin")
    audit = _down(migrated_engine, journal)
    with pytest.raises(AuditUnavailableError, match="registry data is not shown"):
        audit.record(
            "subscriber_read", "registry_admin", Key(), ["subscriber:s1"], fail_closed=True
        )
    assert not journal.has_pending()  # nothing was shown, so nothing is kept


def test_other_records_go_to_the_journal_and_are_chained_first_when_the_log_is_back(
    migrated_engine: sa.Engine, tmp_path: Path
) -> None:
    journal = _journal(tmp_path / "data" / "journal.bin")
    down = _down(migrated_engine, journal)
    first = down.record(
        "registry_locate",
        "emergency_location",
        Key(),
        ["subscriber:s1", "report:r_1"],
        fail_closed=False,
    )
    down.record("auth_failure", "access_control", None, (), {"status": 401}, fail_closed=False)
    kept = journal.pending(AUDIT_KIND)
    assert [r.payload["action"] for r in kept] == ["registry_locate", "auth_failure"]
    assert kept[0].keys == (first.record_id,) and AuditRecord.from_dict(kept[0].payload) == first
    assert stat.S_IMODE(os.stat(journal.path).st_mode) == 0o600
    raw = journal.path.read_bytes()
    assert b"subscriber:s1" not in raw and b"registry_locate" not in raw  # encrypted
    up = AuditService(AuditRepo(migrated_engine))
    up.use_journal(journal)
    up.record("key_revoke", "key_management", Key(), ["key:k1"], fail_closed=True)
    stored = list(up.export())
    assert [s.record.action for s in stored] == ["registry_locate", "auth_failure", "key_revoke"]
    assert stored[0].record == first
    assert stored[1].record.actor == "anonymous" and stored[1].record.key_id is None
    assert not journal.has_pending() and up.verify().count == 3
    up.chain_journaled(first.to_dict())  # a replay after a crash before the mark: a no-op
    assert up.verify().count == 3


def test_the_replayer_makes_the_journal_wait_while_the_log_is_down(
    migrated_engine: sa.Engine, tmp_path: Path
) -> None:
    journal = _journal(tmp_path / "journal.bin")
    down = _down(migrated_engine, journal)
    down.record("layer_change", "city_maintenance", Key(), ["layer:x"], fail_closed=False)
    with pytest.raises(StoreUnavailableError):
        down.chain_journaled(journal.pending(AUDIT_KIND)[0].payload)
    result = journal.replay()
    assert result.store_unavailable and result.failed == 0 and journal.has_pending()
    AuditService(AuditRepo(migrated_engine)).use_journal(journal)  # the log is back
    assert journal.replay().replayed == 1 and not journal.has_pending()
    assert journal.replay().replayed == 0
    assert AuditRepo(migrated_engine).count() == 1


def test_without_a_journal_a_record_the_log_cannot_take_is_logged_as_lost(
    migrated_engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    record = _down(migrated_engine, None).record(
        "registry_locate", "emergency_location", Key(), fail_closed=False
    )
    assert record.action == "registry_locate"
    assert "lost" in caplog.text and "no fallback" in caplog.text


def test_a_failing_fallback_never_fails_the_caller(migrated_engine: sa.Engine) -> None:
    def broken(record: AuditRecord) -> None:
        raise OSError("disk full")

    audit = AuditService(DownRepo(migrated_engine), fallback=broken)
    record = audit.record("registry_locate", "emergency_location", Key(), fail_closed=False)
    assert record.action == "registry_locate"


def test_a_full_journal_never_fails_the_caller(
    migrated_engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = _journal(tmp_path / "journal.bin")

    def full(*args: Any, **kwargs: Any) -> Any:
        raise JournalUnavailableError("the local journal cannot be written (disk full)")

    monkeypatch.setattr(journal, "append", full)
    record = _down(migrated_engine, journal).record(
        "registry_locate", "emergency_location", Key(), fail_closed=False
    )
    assert record.action == "registry_locate"


def test_phone_subject_is_the_hash_only() -> None:
    subject = phone_subject("ab" * 32)
    assert subject.startswith("phone_ref:") and "ab" * 32 not in subject
    assert subject == phone_subject("ab" * 32)  # stable: an auditor can search by number


def test_audited_swap_records_changed_layers_and_facilities(
    migrated_engine: sa.Engine, demo_router: Any
) -> None:
    from geo_router.city.router import Router

    old = demo_router.snapshot
    versions = dict(old.versions)
    layer = next(iter(old.layers))
    facility = next(iter(old.facilities))
    versions[layer] = "0" * 12
    versions[facility] = "1" * 12
    router = Router(old)
    audit = AuditService(AuditRepo(migrated_engine))
    previous = audited_swap(router, replace(old, versions=versions), audit=audit, who=Key())
    assert previous is old and router.snapshot.versions == versions
    records = [s.record for s in audit.export()]
    assert [(r.action, r.subjects) for r in records] == [
        ("layer_change", (f"layer:{layer}",)),
        ("facility_change", (f"facility:{facility}",)),
    ]
    assert records[0].detail == {"versions": {layer: [old.versions[layer], "0" * 12]}}
    assert records[0].actor == "call-desk" and records[0].purpose == "city_maintenance"
