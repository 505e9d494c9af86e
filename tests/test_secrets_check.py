"""Secrets must match the store (issue 10, High 4 and the start-up half of Medium 12).

Each way of starting refuses, in one line, secrets that do not open the store, an empty store
whose secrets belong to a store that held data, and a damaged SQLite file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import add_report, add_subscriber, plaintexts
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.main import create_app_from_env
from api.settings import AppSettings
from geo_router.cli import app as cli
from geo_router.errors import StoreIntegrityError, StoreSecretsMismatchError
from geo_router.intake.secrets import SECRETS_FILENAME, Secrets, write_new_secrets_file
from geo_router.settings import DEMO_CITY_PROFILE
from geo_router.store import make_engine
from geo_router.store.schema import store_meta
from geo_router.store.secrets_check import check_for_service, claim_secrets, quick_check

LOCAL_PEER = ("127.0.0.1", 50000)


def _meta(engine: sa.Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(store_meta)).first()


def test_check_values_accept_the_same_secrets_and_refuse_others(migrated_engine: Any) -> None:
    secrets = Secrets.generate()
    first = claim_secrets(migrated_engine, secrets)
    assert first.status == "recorded"
    meta = _meta(migrated_engine)
    # the check values reveal neither secret
    assert secrets.pepper not in json.dumps([meta.pepper_check, meta.key_checks])
    assert secrets.encryption_key not in json.dumps(meta.key_checks)
    again = claim_secrets(migrated_engine, Secrets(secrets.pepper, secrets.encryption_key))
    assert again.status == "accepted" and again.store_id == first.store_id

    other_key = Secrets(secrets.pepper, Secrets.generate().encryption_key)
    with pytest.raises(StoreSecretsMismatchError, match="encryption key"):
        claim_secrets(migrated_engine, other_key)
    other_pepper = Secrets(Secrets.generate().pepper, secrets.encryption_key)
    with pytest.raises(StoreSecretsMismatchError, match="pepper"):
        claim_secrets(migrated_engine, other_pepper)


def test_a_key_put_first_by_hand_is_remembered_and_the_old_one_stays_required(
    migrated_engine: Any,
) -> None:
    old = Secrets.generate()
    claim_secrets(migrated_engine, old)
    newer = Secrets.generate().encryption_key
    both = Secrets(old.pepper, f"{newer},{old.encryption_key}")
    assert claim_secrets(migrated_engine, both).status == "accepted"
    assert len(_meta(migrated_engine).key_checks) == 2
    # rows may now be under either key: dropping the old one by hand is refused
    with pytest.raises(StoreSecretsMismatchError):
        claim_secrets(migrated_engine, Secrets(old.pepper, newer))


def test_a_store_with_data_but_no_check_values_is_verified_by_decrypting(
    migrated_engine: Any,
) -> None:
    secrets = Secrets.generate()
    add_subscriber(migrated_engine, secrets, "+6281234567890")
    add_report(migrated_engine, secrets, "+6281234567891", "k1")
    with pytest.raises(StoreSecretsMismatchError, match="does not decrypt"):
        claim_secrets(migrated_engine, Secrets.generate())
    with pytest.raises(StoreSecretsMismatchError, match="pepper"):
        claim_secrets(migrated_engine, Secrets(Secrets.generate().pepper, secrets.encryption_key))
    assert _meta(migrated_engine) is None  # nothing recorded for refused secrets
    assert claim_secrets(migrated_engine, secrets).status == "verified"
    assert _meta(migrated_engine) is not None
    with pytest.raises(StoreSecretsMismatchError):
        claim_secrets(migrated_engine, Secrets.generate())


def test_an_empty_store_is_refused_when_the_secrets_belong_to_another(
    tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "secrets.json"
    write_new_secrets_file(path)
    first = make_engine(f"sqlite:///{tmp_path / 'first.sqlite3'}")
    from geo_router.store import upgrade

    upgrade(first)
    from geo_router.intake.secrets import _read_file

    bound = claim_secrets(first, _read_file(path))
    first.dispose()
    assert json.loads(path.read_text())["store_id"] == bound.store_id

    upgrade(database_url)
    replacement = make_engine(database_url)  # the database was deleted: a new, empty one
    try:
        with pytest.raises(StoreSecretsMismatchError, match="deleted or replaced"):
            claim_secrets(replacement, _read_file(path))
        fresh = claim_secrets(replacement, _read_file(path), allow_new=True)
    finally:
        replacement.dispose()
    assert fresh.store_id != bound.store_id
    assert json.loads(path.read_text())["store_id"] == fresh.store_id  # rebound, still 0600
    assert path.stat().st_mode & 0o777 == 0o600


def _corrupt_middle_page(path: Path) -> None:
    """Overwrite a page in the middle of a SQLite file with garbage (as a bad disk would)."""
    size = path.stat().st_size
    page = 4096
    middle = (size // page // 2) * page
    with path.open("r+b") as handle:
        handle.seek(middle)
        handle.write(b"\xa5" * page)


def _filled_sqlite(path: Path, secrets: Secrets, rows: int = 300) -> None:
    engine = make_engine(f"sqlite:///{path}")
    from geo_router.store import upgrade

    upgrade(engine)
    for i in range(rows):
        add_subscriber(engine, secrets, f"+62812{i:07d}")
    engine.dispose()


def test_quick_check_finds_a_damaged_page_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    _filled_sqlite(path, Secrets.generate())
    engine = make_engine(f"sqlite:///{path}")
    quick_check(engine)  # healthy: nothing raised
    engine.dispose()
    _corrupt_middle_page(path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with pytest.raises(StoreIntegrityError, match="damaged"):
            check_for_service(engine, Secrets.generate())
    finally:
        engine.dispose()


# --- every way of starting refuses


def _app(data_dir: Path, demo_router: Any, **named: Any) -> Any:
    settings = AppSettings.of(data_dir=data_dir, database_url=None, _env_file=None, **named)
    return create_app(settings, city_loader=lambda s: (demo_router, None))


def _readyz(app: Any) -> Any:
    with TestClient(app, client=LOCAL_PEER) as client:
        if app.state.load_error is None:
            assert app.state.ready_event.wait(60)
        return client.get("/readyz")


def _started_with_data(data_dir: Path, demo_router: Any) -> Secrets:
    """An embedded store served once, then given a subscriber; its secrets."""
    app = _app(data_dir, demo_router)
    assert _readyz(app).status_code == 200
    secrets = Secrets.load(app.state.settings.secrets, app.state.settings.store)
    engine = make_engine(f"sqlite:///{data_dir / 'geo_router.sqlite3'}")
    add_subscriber(engine, secrets, "+6281234567890")
    engine.dispose()
    return secrets


def test_deleting_the_secrets_file_refuses_to_start_and_generates_nothing(
    tmp_path: Path, demo_router: Any, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = _started_with_data(tmp_path, demo_router)
    saved = (tmp_path / SECRETS_FILENAME).read_bytes()
    (tmp_path / SECRETS_FILENAME).unlink()
    caplog.set_level(logging.ERROR, logger="geo_router.api")
    ready = _readyz(_app(tmp_path, demo_router))
    assert ready.status_code == 503
    assert "secrets file" in ready.json()["detail"] and "restore" in ready.json()["detail"]
    assert not (tmp_path / SECRETS_FILENAME).exists()  # no new secrets for a store in use
    # restoring the old file heals it: nothing was written under other keys meanwhile
    (tmp_path / SECRETS_FILENAME).write_bytes(saved)
    (tmp_path / SECRETS_FILENAME).chmod(0o600)
    assert _readyz(_app(tmp_path, demo_router)).status_code == 200
    engine = make_engine(f"sqlite:///{tmp_path / 'geo_router.sqlite3'}")
    assert next(iter(plaintexts(engine, secrets).values()))[0] == "+6281234567890"
    engine.dispose()


def test_other_secrets_in_the_environment_are_refused_with_the_reason(
    tmp_path: Path, demo_router: Any
) -> None:
    _started_with_data(tmp_path, demo_router)
    other = Secrets.generate()
    app = _app(tmp_path, demo_router, pepper=other.pepper, encryption_key=other.encryption_key)
    ready = _readyz(app)
    assert ready.status_code == 503
    assert "not the one this store was written with" in ready.json()["detail"]
    assert app.state.store is None and app.state.secrets is None


def test_a_deleted_database_is_refused_not_served_empty(tmp_path: Path, demo_router: Any) -> None:
    _started_with_data(tmp_path, demo_router)
    for name in ("geo_router.sqlite3", "geo_router.sqlite3-wal", "geo_router.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    ready = _readyz(_app(tmp_path, demo_router))
    assert ready.status_code == 503
    assert "deleted or replaced" in ready.json()["detail"]
    # the operator's explicit choice starts afresh
    env = {"GEO_ROUTER_DATA_DIR": str(tmp_path), "GEO_ROUTER_DATABASE_URL": None}
    result = CliRunner().invoke(cli, ["db", "init", "--new"], env=env)
    assert result.exit_code == 0, result.output
    assert _readyz(_app(tmp_path, demo_router)).status_code == 200


def test_a_damaged_database_is_refused_at_start(tmp_path: Path, demo_router: Any) -> None:
    secrets = _started_with_data(tmp_path, demo_router)
    engine = make_engine(f"sqlite:///{tmp_path / 'geo_router.sqlite3'}")
    for i in range(300):
        add_subscriber(engine, secrets, f"+62813{i:07d}")
    engine.dispose()
    _corrupt_middle_page(tmp_path / "geo_router.sqlite3")
    ready = _readyz(_app(tmp_path, demo_router))
    assert ready.status_code == 503
    assert "damaged" in ready.json()["detail"]


def _env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("GEO_ROUTER_DATA_DIR", str(data_dir))
    for name in ("GEO_ROUTER_DATABASE_URL", "GEO_ROUTER_SECRETS_FILE", "GEO_ROUTER_PEPPER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GEO_ROUTER_ENCRYPTION_KEY", raising=False)


def test_the_uvicorn_factory_and_serve_refuse_in_one_line(
    tmp_path: Path,
    demo_router: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _started_with_data(tmp_path, demo_router)
    other = Secrets.generate()
    _env(monkeypatch, tmp_path)
    monkeypatch.setenv("GEO_ROUTER_PEPPER", other.pepper)
    monkeypatch.setenv("GEO_ROUTER_ENCRYPTION_KEY", other.encryption_key)
    with pytest.raises(SystemExit) as exited:
        create_app_from_env()
    assert exited.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error:") and "pepper" in lines[-1]

    import uvicorn

    calls: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append(a))
    result = CliRunner().invoke(cli, ["serve", "--city", str(DEMO_CITY_PROFILE)])
    assert result.exit_code == 2
    assert "error:" in result.output and "pepper" in result.output
    assert calls == []


def test_a_file_too_damaged_to_open_is_refused_by_the_app_and_the_factory(
    tmp_path: Path,
    demo_router: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "geo_router.sqlite3").write_bytes(b"\x00not sqlite\xff" * 1000)
    ready = _readyz(_app(tmp_path, demo_router))
    assert ready.status_code == 503 and "damaged" in ready.json()["detail"]
    _env(monkeypatch, tmp_path)
    with pytest.raises(SystemExit):
        create_app_from_env()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error:") and "damaged" in last


def test_workers_claiming_a_new_store_together_agree(migrated_engine: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    secrets = Secrets.generate()
    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(lambda _: claim_secrets(migrated_engine, secrets), range(4)))
    assert len({c.store_id for c in claims}) == 1
    assert sorted(c.status for c in claims) == ["accepted"] * 3 + ["recorded"]
