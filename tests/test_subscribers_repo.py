"""SubscribersRepo: the subscribers table on SQLite and PostgreSQL, as typed rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from geo_router.errors import ConfigurationError, InputError
from geo_router.intake.secrets import Secrets
from geo_router.store.schema import subscribers
from geo_router.store.subscribers_repo import Home, Registration, SubscriberRow, SubscribersRepo

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SEALED = ("phone_enc", "name_enc", "address_enc")


@pytest.fixture
def repo(migrated_engine: Any) -> SubscribersRepo:
    return SubscribersRepo(migrated_engine, Secrets.generate())


def _row(n: int, **changes: Any) -> SubscriberRow:
    row = SubscriberRow(
        id=f"s{n}",
        phone_hash=f"hash-{n}",
        phone_enc=f"token-{n}",
        name_enc=None,
        address_enc=f"address-token-{n}",
        lon=107.6,
        lat=-6.9,
        location_source="given",
        geocode_confidence=None,
        zones={"kelurahan": {"zone_id": "K1"}},
        responders={"fire_station": []},
        verification_status="unverified",
        verification_method=None,
        consent_at=None,
        created_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n),
    )
    return replace(row, **changes)


def test_insert_read_count_page(repo: SubscribersRepo) -> None:
    rows = [_row(i) for i in range(3)]
    repo.insert(rows)
    assert repo.get("s1") == rows[1] and repo.get("nope") is None
    assert repo.by_hash("hash-2") == rows[2] and repo.by_hash("hash-9") is None
    assert repo.count() == 3
    assert repo.page(limit=2, offset=1) == rows[1:3]  # oldest first
    assert repo.taken(["hash-0", "hash-9", "hash-2"]) == {"hash-0", "hash-2"}
    assert rows[0].home == Home(107.6, -6.9, "given", None)
    assert "token" not in repr(rows[0])  # sealed fields stay out of repr


def test_registration_reads_no_sealed_column(repo: SubscribersRepo) -> None:
    repo.insert([_row(1), _row(2, lon=None, lat=None, location_source=None)])
    statements: list[str] = []

    @sa.event.listens_for(repo.engine, "before_cursor_execute")
    def record(*args: Any) -> None:
        statements.append(args[2])

    assert repo.registration("hash-1") == Registration("s1", Home(107.6, -6.9, "given", None))
    assert repo.registration("hash-2") == Registration("s2", None)  # registered, no home
    assert repo.registration("hash-3") is None
    assert statements and not any(col in sql for sql in statements for col in SEALED)


def test_duplicates_are_refused(repo: SubscribersRepo) -> None:
    repo.insert([_row(1)])
    with pytest.raises(InputError) as info:
        repo.insert([_row(2), _row(3, phone_hash="hash-1")])
    assert info.value.detail["code"] == "duplicate_phone"
    assert repo.count() == 1  # all or none
    repo.insert([_row(2)])
    with pytest.raises(InputError, match="already registered"):
        repo.save(replace(_row(2), phone_hash="hash-1"))


def test_save_and_delete(repo: SubscribersRepo) -> None:
    repo.insert([_row(1)])
    moved = replace(_row(1), lon=107.7, zones={}, updated_at=T0 + timedelta(days=1))
    assert repo.save(moved) is True
    assert repo.get("s1") == moved
    assert repo.save(_row(5)) is False  # no such subscriber
    assert repo.delete("s1") is True and repo.delete("s1") is False
    assert repo.count() == 0


def test_home_is_stored_only_sealed(repo: SubscribersRepo) -> None:
    """Medium 10: the table has no plaintext point, only a token the secrets open."""
    repo.insert([_row(1, lon=107.61234, lat=-6.91234)])
    assert "lon" not in subscribers.c and "lat" not in subscribers.c
    with repo.engine.connect() as conn:
        raw = conn.execute(sa.select(subscribers)).one()._mapping
    texts = " ".join(str(v) for v in raw.values())
    assert "107.61234" not in texts and "6.91234" not in texts
    assert raw["home_enc"] and raw["zones"] == {"kelurahan": {"zone_id": "K1"}}
    assert repo.get("s1") == _row(1, lon=107.61234, lat=-6.91234)


def test_without_the_secrets_a_home_is_neither_read_nor_written(repo: SubscribersRepo) -> None:
    repo.insert([_row(1)])
    blind = SubscribersRepo(repo.engine)
    row = blind.get("s1")
    assert row is not None and row.home is None and row.zones == _row(1).zones
    with pytest.raises(ConfigurationError, match="encrypted"):
        blind.insert([_row(2)])
    with pytest.raises(ConfigurationError, match="encrypted"):
        blind.save(row)  # would drop the home it could not read
    assert repo.get("s1") == _row(1)
    assert blind.sealed_with(repo.cipher).get("s1") == _row(1)  # type: ignore[arg-type]
