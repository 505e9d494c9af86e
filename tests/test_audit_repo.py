"""The audit log in the store: chaining, idempotent replays, one chain under concurrency."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from geo_router.errors import AuditUnavailableError
from geo_router.store import make_engine
from geo_router.store.audit_repo import GENESIS_HASH, AuditRecord, AuditRepo, chain_hash
from geo_router.store.schema import metadata

OWN_TABLES = {"audit_log", "audit_head"}


def _record(n: int, **changes: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "record_id": f"rec-{n}",
        "at": datetime(2026, 12, 1, 4, 0, n % 60, 123456, tzinfo=UTC),
        "actor": "test-admin",
        "key_id": "key-1",
        "action": "subscriber_read",
        "purpose": "registry_admin",
        "subjects": (f"subscriber:s{n}",),
        "detail": {"n": n, "route": "GET /v1/subscribers/{subscriber_id}"},
    }
    values.update(changes)
    return AuditRecord(**values)


def test_records_are_chained_in_order(migrated_engine: sa.Engine) -> None:
    repo = AuditRepo(migrated_engine)
    assert repo.head().seq == 0 and repo.head().hash == GENESIS_HASH
    assert repo.append([_record(1), _record(2)]) == [1, 2]
    assert repo.append([_record(3)]) == [3]
    stored = list(repo.records())
    assert [s.seq for s in stored] == [1, 2, 3]
    assert stored[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
    for s in stored:  # what comes back hashes to what was stored (timestamps, JSON, lists)
        assert chain_hash(s.seq, s.record, s.prev_hash) == s.hash
    assert stored[1].record == _record(2)
    assert repo.head().seq == 3 and repo.head().hash == stored[-1].hash
    assert [s.seq for s in repo.last(2)] == [2, 3]
    assert repo.count() == 3


def test_a_replayed_record_is_chained_once(migrated_engine: sa.Engine) -> None:
    repo = AuditRepo(migrated_engine)
    repo.append([_record(1)])
    assert repo.append([_record(1), _record(2), _record(2)]) == [2]
    assert [s.record.record_id for s in repo.records()] == ["rec-1", "rec-2"]


def test_the_vocabulary_is_enforced_by_the_database(migrated_engine: sa.Engine) -> None:
    with pytest.raises(AuditUnavailableError):
        AuditRepo(migrated_engine).append([_record(1, action="peek")])
    assert AuditRepo(migrated_engine).count() == 0


def test_a_database_failure_is_an_audit_unavailable_error(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}")
    try:
        with pytest.raises(AuditUnavailableError, match="audit log cannot be written"):
            AuditRepo(engine).append([_record(1)])
    finally:
        engine.dispose()


def test_concurrent_appends_keep_one_chain(database_url: str, migrated_engine: sa.Engine) -> None:
    """Threads with engines of their own (as separate workers would) never fork the chain."""
    threads_n, per_thread = 6, 15
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def work(t: int) -> None:
        engine = make_engine(database_url)
        try:
            repo = AuditRepo(engine)
            start.wait()
            for i in range(per_thread):
                repo.append([_record(t * 1000 + i, record_id=f"t{t}-{i}")])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    stored = list(AuditRepo(migrated_engine).records())
    assert [s.seq for s in stored] == list(range(1, threads_n * per_thread + 1))
    prev = GENESIS_HASH
    for s in stored:
        assert s.prev_hash == prev and chain_hash(s.seq, s.record, prev) == s.hash
        prev = s.hash
    assert AuditRepo(migrated_engine).head().hash == prev


def test_metadata_matches_migrated_database(migrated_engine: sa.Engine) -> None:
    def own_name(name: str | None, type_: str, _parents: object) -> bool:
        return type_ != "table" or name in OWN_TABLES

    def own_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "name", None) in OWN_TABLES

    with migrated_engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "include_name": own_name, "include_object": own_object},
        )
        assert compare_metadata(context, metadata) == []
