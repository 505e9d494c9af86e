"""API keys: shown once, stored as sha256, verified fast, revocation honoured, the CLI."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from geo_router.errors import InputError, NotFoundError, StoreUnavailableError
from geo_router.store import KeyStore, Store
from geo_router.store.schema import api_keys


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store.from_url(database_url) as opened:
        yield opened


def test_create_returns_key_once_and_stores_only_its_hash(store: Store) -> None:
    key, record = store.keys.create("intake", "sms-gateway", channel="sms")
    assert key.startswith("gr_") and len(key) >= 40
    assert record.prefix == key[:8]
    assert (record.role, record.channel, record.name) == ("intake", "sms", "sms-gateway")
    assert record.created_at.tzinfo is not None and record.revoked_at is None
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(api_keys)).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in [str(v) for v in row]


def test_verify(store: Store) -> None:
    key, record = store.keys.create("admin", "ops")
    assert store.keys.verify(key) == record
    assert store.keys.verify(key + "x") is None
    assert store.keys.verify("") is None
    assert store.keys.verify("not-a-key") is None


def test_revoke_by_id_and_prefix(store: Store) -> None:
    key1, r1 = store.keys.create("planner", "a")
    key2, r2 = store.keys.create("analyst", "b")
    assert store.keys.count_active() == 2
    assert store.keys.verify(key1) is not None  # cached now: revocation must still win
    revoked = store.keys.revoke(r1.id)
    assert revoked.revoked_at is not None and not revoked.active
    assert store.keys.verify(key1) is None
    assert store.keys.revoke(r2.prefix).id == r2.id
    assert store.keys.verify(key2) is None
    assert store.keys.count_active() == 0
    assert store.keys.count_all() == 2  # revoked keys stay: the API never reopens
    again = store.keys.revoke(r1.id)  # idempotent, keeps the first revocation time
    assert again.revoked_at == revoked.revoked_at
    assert [r.id for r in store.keys.list()] == [r1.id, r2.id]


def test_revoke_unknown_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no API key"):
        store.keys.revoke("gr_nope0")


def test_ambiguous_prefix_refused(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["SAME5abcdefghijklmnopqrstuvwxyz0123456789ab", "SAME5zyxw"])
    monkeypatch.setattr("geo_router.store.keys.secrets.token_urlsafe", lambda _n: next(tokens))
    _, r1 = store.keys.create("intake", "a")
    _, r2 = store.keys.create("intake", "b")
    assert r1.prefix == r2.prefix
    with pytest.raises(InputError, match="revoke by id"):
        store.keys.revoke(r1.prefix)
    assert store.keys.get(r2.id) == r2


def test_revocation_in_another_process_honoured_within_ttl(database_url: str) -> None:
    with Store.from_url(database_url) as store:
        key, record = store.keys.create("intake", "web", channel="web")
        worker = KeyStore(store.engine, cache_ttl_s=0.3)  # another process' view
        assert worker.verify(key) == record
        store.keys.revoke(record.id)
        assert worker.verify(key) == record  # still cached
        time.sleep(0.35)
        assert worker.verify(key) is None


def test_new_key_from_another_process_accepted_at_once(store: Store) -> None:
    worker = KeyStore(store.engine)
    assert worker.verify("gr_" + "x" * 43) is None
    key, _ = store.keys.create("intake", "late")
    assert worker.verify(key) is not None


def test_last_used_written_at_most_once_per_interval(store: Store) -> None:
    key, record = store.keys.create("intake", "call-center", channel="call")
    keys = KeyStore(store.engine, touch_interval_s=60)
    keys.verify(key)
    first = keys.get(record.id).last_used_at
    assert first is not None
    keys.verify(key)
    assert keys.get(record.id).last_used_at == first


@pytest.mark.parametrize(
    ("role", "name", "channel", "message"),
    [
        ("root", "x", None, "unknown role"),
        ("intake", "  ", None, "name"),
        ("admin", "x", "sms", "only intake keys"),
        ("intake", "x", "fax", "unknown channel"),
    ],
)
def test_create_refuses_bad_input(
    store: Store, role: str, name: str, channel: str | None, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        store.keys.create(role, name, channel=channel)


def test_verify_is_fast(tmp_path: Path) -> None:
    with Store.from_url(f"sqlite:///{tmp_path / 'k.sqlite3'}") as store:
        key, _ = store.keys.create("intake", "bench")
        store.keys.verify(key)
        start = time.perf_counter()
        for _ in range(2000):
            store.keys.verify(key)
        cached_us = (time.perf_counter() - start) / 2000 * 1e6
        cold = KeyStore(store.engine, cache_ttl_s=0, touch_interval_s=0)
        start = time.perf_counter()
        for _ in range(200):
            cold.verify(key)
        uncached_us = (time.perf_counter() - start) / 200 * 1e6
    print(f"verify: cached {cached_us:.1f} us, uncached {uncached_us:.1f} us")
    assert cached_us < 200
    assert uncached_us < 5000


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_verify_never_raises_on_arbitrary_text(text: str, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    keys = _shared_keystore(tmp_path_factory)
    assert keys.verify(text) is None


_KEYSTORES: dict[str, KeyStore] = {}


def _shared_keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    if "ks" not in _KEYSTORES:
        path = tmp_path_factory.mktemp("fuzz") / "k.sqlite3"
        _KEYSTORES["ks"] = Store.from_url(f"sqlite:///{path}").keys
    return _KEYSTORES["ks"]


def _invoke(tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    from geo_router.cli import app

    env = {"GEO_ROUTER_DATA_DIR": str(tmp_path), "GEO_ROUTER_DATABASE_URL": ""}
    return CliRunner().invoke(app, list(args), env=env)


def test_cli_create_list_revoke(tmp_path: Path) -> None:
    created = _invoke(
        tmp_path, "keys", "create", "--role", "intake", "--name", "sms-gateway", "--channel", "sms"
    )
    assert created.exit_code == 0, created.output
    key = next(line for line in created.output.splitlines() if line.startswith("gr_"))
    assert "cannot be shown again" in created.output
    with Store.from_url(f"sqlite:///{tmp_path / 'geo_router.sqlite3'}") as store:
        record = store.keys.verify(key)
        assert record is not None and record.channel == "sms"

    listed = _invoke(tmp_path, "keys", "list")
    assert listed.exit_code == 0
    assert record.id in listed.output and record.prefix in listed.output
    assert key not in listed.output

    revoked = _invoke(tmp_path, "keys", "revoke", record.prefix)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in revoked.output
    with Store.from_url(f"sqlite:///{tmp_path / 'geo_router.sqlite3'}") as store:
        assert store.keys.verify(key) is None


def test_cli_errors_exit_1(tmp_path: Path) -> None:
    bad_role = _invoke(tmp_path, "keys", "create", "--role", "root", "--name", "x")
    assert bad_role.exit_code == 1 and "unknown role" in bad_role.output
    unknown = _invoke(tmp_path, "keys", "revoke", "nope")
    assert unknown.exit_code == 1 and "no API key" in unknown.output


def test_cli_says_which_store_on_stderr_and_records_no_city(tmp_path: Path) -> None:
    from geo_router.store.city_record import claim_city, recorded_city

    store_line = f"store: {(tmp_path / 'geo_router.sqlite3').resolve()}"
    created = _invoke(tmp_path, "keys", "create", "--role", "admin", "--name", "ops")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("gr_") and "\n" not in key  # stdout: the key alone
    assert created.stderr.splitlines()[0] == store_line
    listed = _invoke(tmp_path, "keys", "list")
    assert listed.stderr.splitlines() == [store_line] and "store:" not in listed.stdout
    with Store.from_url(f"sqlite:///{tmp_path / 'geo_router.sqlite3'}") as store:
        assert recorded_city(store.engine) is None  # keys name no city
        claim_city(store.engine, "Another City", "0" * 64)
    revoked = _invoke(tmp_path, "keys", "revoke", key[:8])  # whatever city the store serves
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stderr.splitlines() == [store_line]
    with Store.from_url(f"sqlite:///{tmp_path / 'geo_router.sqlite3'}") as store:
        record = recorded_city(store.engine)
        assert record is not None and record.name == "Another City"


def test_key_cache_ttl_is_a_setting_and_bounds_revocation_elsewhere(tmp_path: Path) -> None:
    from geo_router.settings import StoreSettings

    settings = StoreSettings(data_dir=tmp_path, key_cache_ttl_s=0.3, _env_file=None)  # type: ignore[call-arg]
    with Store.open(settings) as worker, Store.open(settings) as admin:
        assert worker.keys.cache_ttl_s == 0.3
        key, record = admin.keys.create("intake", "web", channel="web")
        assert worker.keys.verify(key) == record
        admin.keys.revoke(record.id)  # in another process
        deadline = time.monotonic() + 0.3 + 1.0
        while worker.keys.verify(key) is not None:
            assert time.monotonic() < deadline, "a revoked key kept working past the TTL"
            time.sleep(0.05)


def test_a_database_outage_keeps_verified_keys_working(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, record = store.keys.create("intake", "call", channel="call")
    worker = KeyStore(store.engine, cache_ttl_s=0.05, touch_interval_s=0)
    assert worker.verify(key) == record
    time.sleep(0.1)  # the entry is stale: the database is asked, and is down
    worker.cache_ttl_s = 30  # from now on: no expiry between the two requests below
    calls: list[str] = []

    def down(digest: str) -> None:
        calls.append(digest)
        raise StoreUnavailableError("the database is unavailable (connection failed)")

    monkeypatch.setattr(worker, "_lookup", down)
    assert worker.verify(key) == record  # from the cache: no revocation can happen meanwhile
    assert worker.verify(key) == record
    assert len(calls) == 1  # asked once per TTL, not on every request of the outage
    with pytest.raises(StoreUnavailableError):  # never seen: 503, not a 401
        worker.verify("gr_" + "n" * 43)


def test_warm_keys_verify_during_an_outage_without_a_first_lookup(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, record = store.keys.create("intake", "sms", channel="sms")
    _, revoked = store.keys.create("intake", "old", channel="sms")
    store.keys.revoke(revoked.id)
    worker = KeyStore(store.engine, cache_ttl_s=30, touch_interval_s=0)  # a fresh worker
    assert worker.warm() == 1  # active keys only

    def down(_digest: str) -> None:
        raise AssertionError("a warmed key needs no lookup")

    monkeypatch.setattr(worker, "_lookup", down)
    assert worker.verify(key) == record
