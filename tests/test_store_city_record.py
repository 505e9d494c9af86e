"""The store says which store it is (never a password) and records the city it serves."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from geo_router.errors import ConfigurationError, ProfileError, StoreCityMismatchError
from geo_router.settings import DEMO_CITY_PROFILE, StoreSettings
from geo_router.store import Store, current_revision, describe_store, make_engine, upgrade
from geo_router.store.city_record import (
    CityClaim,
    claim_city,
    claim_city_profile,
    profile_identity,
    recorded_city,
)
from geo_router.store.database import alembic_config, head_revision
from geo_router.store.schema import metadata

DEMO_NAME = "Kota Contoh"
OTHER_NAME = "Kota Lain"


def copy_city(folder: Path, name: str = OTHER_NAME) -> Path:
    """A copy of the demo city (its data beside it) whose profile has another name."""
    shutil.copytree(DEMO_CITY_PROFILE.parent, folder)
    profile = folder / DEMO_CITY_PROFILE.name
    text = profile.read_text(encoding="utf-8")
    assert f'name = "{DEMO_NAME}"' in text
    profile.write_text(text.replace(f'name = "{DEMO_NAME}"', f'name = "{name}"', 1))
    return profile


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


# --------------------------------------------------------------------------- describe_store


def test_describe_store_gives_the_sqlite_file_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = StoreSettings(data_dir=tmp_path / "data", database_url=None, _env_file=None)
    expected = str((tmp_path / "data" / "geo_router.sqlite3").resolve())
    assert describe_store(settings) == expected
    assert describe_store(settings.effective_database_url) == expected
    monkeypatch.chdir(tmp_path)
    relative = StoreSettings(data_dir=Path("rel"), database_url="", _env_file=None)
    assert describe_store(relative) == str((tmp_path / "rel" / "geo_router.sqlite3").resolve())
    engine = make_engine(relative.effective_database_url)
    assert describe_store(engine) == describe_store(relative)
    engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:s3cret@db.example:5432/geo",
        "postgresql+psycopg://alice:s3cret@db.example/geo?sslmode=require",
        "postgresql://alice@db.example/geo?password=s3cret",
    ],
)
def test_describe_store_never_shows_a_password(url: str) -> None:
    settings = StoreSettings(database_url=url, _env_file=None)
    engine = make_engine(url)  # connects lazily: nothing is reached
    try:
        for target in (url, settings, engine, engine.url):
            described = describe_store(target)
            assert "s3cret" not in described
            assert "alice" in described and "db.example" in described and "/geo" in described
    finally:
        engine.dispose()


def test_describe_store_other_urls() -> None:
    assert describe_store("sqlite://") == "SQLite in memory (nothing is kept)"
    described = describe_store("not a url :s3cret@")
    assert "s3cret" not in described and "unparseable" in described


# --------------------------------------------------------------------------- migration 0004


def test_migration_0004_matches_the_schema_on_both_backends(
    database_url: str, engine: sa.Engine
) -> None:
    """Like ``alembic check`` for ``store_city``; then down to 0003 and up again."""

    def own_name(name: str | None, type_: str, _parents: object) -> bool:
        return type_ != "table" or name == "store_city"

    def own_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "name", None) == "store_city"

    assert current_revision(engine) == head_revision()  # later migrations follow 0004
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "include_name": own_name, "include_object": own_object},
        )
        assert compare_metadata(context, metadata) == []

    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    assert "store_city" not in sa.inspect(engine).get_table_names()
    upgrade(engine)
    assert "store_city" in sa.inspect(engine).get_table_names()
    assert recorded_city(engine) is None


def test_the_table_holds_one_row_only(engine: sa.Engine) -> None:
    from geo_router.store.schema import store_city, utcnow

    claim_city(engine, DEMO_NAME, "a" * 64)
    now = utcnow()
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            store_city.insert().values(
                id=2, name=OTHER_NAME, checksum="b" * 64, recorded_at=now, updated_at=now
            )
        )


# --------------------------------------------------------------------------- claim_city


def test_profile_identity_is_the_name_and_the_sha256_of_the_file() -> None:
    identity = profile_identity(DEMO_CITY_PROFILE)
    assert identity.name == DEMO_NAME
    assert identity.checksum == hashlib.sha256(DEMO_CITY_PROFILE.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read profile"),
        ('phone_region = "ID"\n', "name"),
        ('name = "  "\n', "name"),
        ("name = \n", "TOML syntax error"),
    ],
)
def test_profile_identity_refuses_unusable_profiles(
    tmp_path: Path, text: str | None, message: str
) -> None:
    profile = tmp_path / "city.toml"
    if text is not None:
        profile.write_text(text)
    with pytest.raises(ProfileError, match=message):
        profile_identity(profile)


def test_first_open_records_the_city(engine: sa.Engine) -> None:
    assert recorded_city(engine) is None
    claim = claim_city_profile(engine, DEMO_CITY_PROFILE)
    assert claim == CityClaim(
        "recorded",
        DEMO_NAME,
        hashlib.sha256(DEMO_CITY_PROFILE.read_bytes()).hexdigest(),
        describe_store(engine),
    )
    assert claim.note is None
    record = recorded_city(engine)
    assert record is not None
    assert (record.name, record.checksum) == (DEMO_NAME, claim.checksum)
    assert record.recorded_at.tzinfo is not None and record.updated_at == record.recorded_at


def test_the_same_city_is_accepted_again(engine: sa.Engine) -> None:
    first = claim_city_profile(engine, DEMO_CITY_PROFILE)
    before = recorded_city(engine)
    again = claim_city_profile(engine, DEMO_CITY_PROFILE)
    assert again.status == "accepted" and again.note is None
    assert again.checksum == first.checksum
    assert recorded_city(engine) == before


def test_a_changed_profile_updates_the_checksum(engine: sa.Engine, tmp_path: Path) -> None:
    profile = copy_city(tmp_path / "city", DEMO_NAME)
    claim_city_profile(engine, profile)
    before = recorded_city(engine)
    assert before is not None
    with profile.open("a", encoding="utf-8") as f:
        f.write("\n# a category added later\n")
    changed = claim_city_profile(engine, profile)
    assert changed.status == "updated"
    assert changed.previous_checksum == before.checksum
    assert changed.checksum == hashlib.sha256(profile.read_bytes()).hexdigest()
    assert changed.note is not None
    assert f"'{DEMO_NAME}' changed since this store" in changed.note
    assert changed.checksum[:12] in changed.note and before.checksum[:12] in changed.note
    after = recorded_city(engine)
    assert after is not None
    assert after.checksum == changed.checksum
    assert after.recorded_at == before.recorded_at and after.updated_at >= before.updated_at
    assert claim_city_profile(engine, profile).status == "accepted"


def test_another_city_is_refused_in_one_line(engine: sa.Engine, tmp_path: Path) -> None:
    claim_city_profile(engine, DEMO_CITY_PROFILE)
    before = recorded_city(engine)
    other = copy_city(tmp_path / "other")
    with pytest.raises(StoreCityMismatchError) as caught:
        claim_city_profile(engine, other)
    store = describe_store(engine)
    assert caught.value.message == (
        f"this store ({store}) was created for the city '{DEMO_NAME}'; refusing to serve "
        f"'{OTHER_NAME}' from it. Choose another data dir (GEO_ROUTER_DATA_DIR) or database "
        f"(GEO_ROUTER_DATABASE_URL) for '{OTHER_NAME}'."
    )
    assert "\n" not in caught.value.message
    assert isinstance(caught.value, ConfigurationError)
    assert caught.value.detail == {
        "store": store,
        "recorded_city": DEMO_NAME,
        "requested_city": OTHER_NAME,
    }
    assert recorded_city(engine) == before


def test_keys_and_migrations_record_no_city(tmp_path: Path) -> None:
    settings = StoreSettings(data_dir=tmp_path, database_url=None, _env_file=None)
    with Store.open(settings) as store:
        store.keys.create("admin", "ops")
        assert recorded_city(store.engine) is None
        claim_city(store.engine, OTHER_NAME, "c" * 64)
    with Store.open(settings) as store:  # a key is valid whatever city the store serves
        key, _ = store.keys.create("intake", "web", channel="web")
        assert store.keys.verify(key) is not None
        record = recorded_city(store.engine)
        assert record is not None and record.name == OTHER_NAME


def test_workers_starting_together_agree(database_url: str, engine: sa.Engine) -> None:
    """Several processes claiming a new store at once: one records, the others accept."""
    barrier = threading.Barrier(4)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        own = make_engine(database_url)
        try:
            barrier.wait(10)
            results.append(claim_city(own, DEMO_NAME, "d" * 64).status)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(results) == ["accepted"] * 3 + ["recorded"]
