"""Key rotation re-encrypts every registered field in one transaction (issue 10, High 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import add_report, add_subscriber, plaintexts
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from geo_router.cli import app as cli
from geo_router.errors import ConfigurationError, StoreSecretsMismatchError
from geo_router.intake.secrets import Secrets
from geo_router.store import make_engine
from geo_router.store.rotation import rotate_store
from geo_router.store.schema import ENCRYPTED_FIELDS
from geo_router.store.secrets_check import claim_secrets
from geo_router.store.serving_lock import ServingLock


def _filled(engine: Any, secrets: Secrets) -> dict[str, Any]:
    add_subscriber(engine, secrets, "+6281234567890")
    add_subscriber(engine, secrets, "+6281234567891")
    add_report(engine, secrets, "+6281234567892", "key-1")
    add_report(engine, secrets, "+6281234567890", "key-2", home=True)
    claim_secrets(engine, secrets)
    return plaintexts(engine, secrets)


@pytest.mark.parametrize("new_pepper", [False, True])
def test_rotation_reencrypts_every_registered_field(migrated_engine: Any, new_pepper: bool) -> None:
    old = Secrets.generate()
    before = _filled(migrated_engine, old)
    new = Secrets(
        Secrets.generate().pepper if new_pepper else old.pepper,
        Fernet.generate_key().decode(),
    )
    counts = rotate_store(migrated_engine, old, new)
    # 2 subscribers x 4 fields; 2 reports' phones, 1 home; 1 plain and 1 sealed answer
    assert sum(counts.values()) == 2 * 4 + 2 + 1 + 2
    assert len(counts) == len(ENCRYPTED_FIELDS)
    assert plaintexts(migrated_engine, new) == before  # hashes recomputed under the new pepper
    with pytest.raises(ConfigurationError):
        plaintexts(migrated_engine, Secrets(new.pepper, old.encryption_key))
    assert claim_secrets(migrated_engine, new).status == "accepted"
    with pytest.raises(StoreSecretsMismatchError):
        claim_secrets(migrated_engine, old)


def test_rotation_is_all_or_nothing(migrated_engine: Any) -> None:
    old = Secrets.generate()
    before = _filled(migrated_engine, old)

    def crash() -> None:
        raise OSError("disk full while writing the new secrets file")

    with pytest.raises(OSError, match="disk full"):
        rotate_store(migrated_engine, old, Secrets.generate(), before_commit=crash)
    assert plaintexts(migrated_engine, old) == before
    assert claim_secrets(migrated_engine, old).status == "accepted"


def test_rotation_refuses_secrets_that_are_not_the_store_s(migrated_engine: Any) -> None:
    old = Secrets.generate()
    _filled(migrated_engine, old)
    with pytest.raises(StoreSecretsMismatchError):
        rotate_store(migrated_engine, Secrets.generate(), Secrets.generate())


def _env(tmp_path: Path) -> dict[str, str | None]:
    """The embedded store in ``tmp_path``, its secrets file (None unsets a variable)."""
    return {
        "GEO_ROUTER_DATA_DIR": str(tmp_path),
        "GEO_ROUTER_DATABASE_URL": None,
        "GEO_ROUTER_SECRETS_FILE": None,
        "GEO_ROUTER_PEPPER": None,
        "GEO_ROUTER_ENCRYPTION_KEY": None,
    }


def test_cli_rotate_writes_the_new_file_and_keeps_the_previous(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "init"], env=_env(tmp_path)).exit_code == 0
    secrets_file = tmp_path / "secrets.json"
    old_text = secrets_file.read_text()
    old = Secrets(**{k: v for k, v in json.loads(old_text).items() if k != "store_id"})
    engine = make_engine(f"sqlite:///{tmp_path / 'geo_router.sqlite3'}")
    before = _filled(engine, old)

    result = runner.invoke(cli, ["secrets", "rotate", "--pepper"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "re-encrypted 13 value(s)" in result.output
    data = json.loads(secrets_file.read_text())
    new = Secrets(data["pepper"], data["encryption_key"])
    assert data["pepper"] != old.pepper and data["encryption_key"] != old.encryption_key
    assert data["store_id"] == json.loads(old_text)["store_id"]
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    (kept,) = tmp_path.glob("secrets.json.previous-*")
    assert kept.read_text() == old_text and kept.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob("secrets.json.next"))
    assert plaintexts(engine, new) == before

    # a server holding the store makes rotation refuse (it would keep the old key in memory)
    lock = ServingLock(engine)
    try:
        refused = runner.invoke(cli, ["secrets", "rotate"], env=_env(tmp_path))
    finally:
        lock.release()
    assert refused.exit_code == 2 and "a server is running" in refused.output
    assert plaintexts(engine, new) == before
    engine.dispose()


def test_cli_rotate_with_secrets_from_the_environment_needs_a_file(tmp_path: Path) -> None:
    old = Secrets.generate()
    env = {**_env(tmp_path), "GEO_ROUTER_PEPPER": old.pepper}
    env["GEO_ROUTER_ENCRYPTION_KEY"] = old.encryption_key
    result = CliRunner().invoke(cli, ["secrets", "rotate"], env=env)
    assert result.exit_code == 2 and "--file" in result.output
    target = tmp_path / "new-secrets.json"
    result = CliRunner().invoke(cli, ["secrets", "rotate", "--file", str(target)], env=env)
    assert result.exit_code == 0, result.output
    assert f"GEO_ROUTER_SECRETS_FILE={target}" in result.output
    assert target.stat().st_mode & 0o777 == 0o600
