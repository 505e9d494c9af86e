"""Backup and restore of the embedded store, checked against the secrets (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import add_report, add_subscriber, plaintexts
from typer.testing import CliRunner

from geo_router.cli import app as cli
from geo_router.errors import ConfigurationError, StoreInUseError, StoreSecretsMismatchError
from geo_router.intake.secrets import Secrets
from geo_router.settings import secrets_settings
from geo_router.store import make_engine, upgrade
from geo_router.store.backup import backup_sqlite, restore_sqlite
from geo_router.store.secrets_check import claim_secrets
from geo_router.store.serving_lock import ServingLock, exclusive_store


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """An embedded store with two subscribers and a report, its check values recorded."""
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'geo_router.sqlite3'}")
    upgrade(engine)
    secrets = Secrets.generate()
    add_subscriber(engine, secrets, "+6281234567890")
    add_report(engine, secrets, "+6281234567891", "key-1")
    claim_secrets(engine, secrets)
    yield engine, secrets
    engine.dispose()


def test_restore_brings_back_exactly_the_backup(store: Any, tmp_path: Path) -> None:
    engine, secrets = store
    backup = tmp_path / "backups" / "monday.sqlite3"
    info = backup_sqlite(engine, backup)
    assert info.store_id is not None and backup.stat().st_mode & 0o777 == 0o600
    at_backup = plaintexts(engine, secrets)

    add_subscriber(engine, secrets, "+6281234567892")  # written after the backup
    assert plaintexts(engine, secrets) != at_backup

    restored = restore_sqlite(engine, backup, secrets)
    assert restored.store_id == info.store_id
    assert plaintexts(engine, secrets) == at_backup
    assert claim_secrets(engine, secrets).status == "accepted"
    assert restored.previous is not None and restored.previous.stat().st_mode & 0o777 == 0o600
    database = Path(str(engine.url.database))
    assert database.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigurationError, match="never overwrites"):
        backup_sqlite(engine, backup)


def test_restore_with_other_secrets_is_refused_and_replaces_nothing(
    store: Any, tmp_path: Path
) -> None:
    engine, secrets = store
    backup = tmp_path / "backup.sqlite3"
    backup_sqlite(engine, backup)
    add_subscriber(engine, secrets, "+6281234567892")
    now = plaintexts(engine, secrets)
    with pytest.raises(StoreSecretsMismatchError):
        restore_sqlite(engine, backup, Secrets.generate())
    assert plaintexts(engine, secrets) == now
    assert not list(tmp_path.glob("data/.*restore*"))  # no copy left behind


def test_restore_refuses_while_a_server_holds_the_store_unless_forced(
    store: Any, tmp_path: Path
) -> None:
    engine, secrets = store
    backup = tmp_path / "backup.sqlite3"
    backup_sqlite(engine, backup)
    add_subscriber(engine, secrets, "+6281234567892")
    lock = ServingLock(engine)
    try:
        with pytest.raises(StoreInUseError, match="server is running"):
            restore_sqlite(engine, backup, secrets)
        assert len(plaintexts(engine, secrets)) == 4
        restore_sqlite(engine, backup, secrets, force=True)
    finally:
        lock.release()
    assert len(plaintexts(engine, secrets)) == 3


def test_a_server_does_not_start_during_maintenance(store: Any) -> None:
    engine, _secrets = store
    with exclusive_store(engine), pytest.raises(StoreInUseError, match="maintenance"):
        ServingLock(engine)
    ServingLock(engine).release()  # free again afterwards


def _env(tmp_path: Path) -> dict[str, str | None]:
    return {
        "GEO_ROUTER_DATA_DIR": str(tmp_path / "data"),
        "GEO_ROUTER_DATABASE_URL": None,
        "GEO_ROUTER_SECRETS_FILE": None,
        "GEO_ROUTER_PEPPER": None,
        "GEO_ROUTER_ENCRYPTION_KEY": None,
    }


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    runner = CliRunner()
    env = _env(tmp_path)
    assert runner.invoke(cli, ["db", "init"], env=env).exit_code == 0
    raw = json.loads((tmp_path / "data" / "secrets.json").read_text())
    secrets = Secrets(raw["pepper"], raw["encryption_key"])
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'geo_router.sqlite3'}")
    add_subscriber(engine, secrets, "+6281234567890")
    at_backup = plaintexts(engine, secrets)

    backup = tmp_path / "b.sqlite3"
    result = runner.invoke(cli, ["backup", str(backup)], env=env)
    assert result.exit_code == 0, result.output
    assert "with its secrets' check values" in result.output
    add_subscriber(engine, secrets, "+6281234567891")
    engine.dispose()

    result = runner.invoke(cli, ["restore", str(backup)], env=env)
    assert result.exit_code == 0, result.output
    assert "pre-restore" in result.output
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'geo_router.sqlite3'}")
    assert plaintexts(engine, secrets) == at_backup
    engine.dispose()

    other = Secrets.generate()
    mismatched = {**env, "GEO_ROUTER_PEPPER": other.pepper}
    mismatched["GEO_ROUTER_ENCRYPTION_KEY"] = other.encryption_key
    secrets_settings.cache_clear()  # the settings factories read the environment once
    result = runner.invoke(cli, ["restore", str(backup)], env=mismatched)
    assert result.exit_code == 2
    assert result.output.count("error:") == 1 and "pepper" in result.output


def test_cli_backup_of_postgres_prints_the_pg_dump_procedure(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "GEO_ROUTER_DATABASE_URL": "postgresql://u:secret@db.example/geo"}
    result = CliRunner().invoke(cli, ["backup", str(tmp_path / "x")], env=env)
    assert result.exit_code == 2
    assert "pg_dump" in result.output and "pg_restore" in result.output
    assert ":secret@" not in result.output and "u:***@db.example" in result.output


def test_the_serving_lock_keeps_servers_and_maintenance_apart(migrated_engine: Any) -> None:
    first, second = ServingLock(migrated_engine), ServingLock(migrated_engine)  # workers share
    try:
        with (
            pytest.raises(StoreInUseError, match="server is running"),
            exclusive_store(migrated_engine),
        ):
            pass
        with exclusive_store(migrated_engine, force=True):
            pass
    finally:
        first.release()
        second.release()
    with exclusive_store(migrated_engine), pytest.raises(StoreInUseError, match="maintenance"):
        ServingLock(migrated_engine)
    ServingLock(migrated_engine).release()


def test_cli_restore_onto_a_new_machine_needs_the_secrets_first(tmp_path: Path) -> None:
    runner = CliRunner()
    env = _env(tmp_path)
    assert runner.invoke(cli, ["db", "init"], env=env).exit_code == 0
    backup = tmp_path / "b.sqlite3"
    assert runner.invoke(cli, ["backup", str(backup)], env=env).exit_code == 0
    saved = (tmp_path / "data" / "secrets.json").read_bytes()
    for path in (tmp_path / "data").iterdir():  # the machine is lost
        path.unlink()
    result = runner.invoke(cli, ["restore", str(backup)], env=env)
    assert result.exit_code == 2 and "put back the secrets file" in result.output
    assert not (tmp_path / "data" / "secrets.json").exists()  # none generated meanwhile
    (tmp_path / "data" / "secrets.json").write_bytes(saved)
    result = runner.invoke(cli, ["restore", str(backup)], env=env)
    assert result.exit_code == 0, result.output
