"""geo-router subscribers erase: by a number typed at a hidden prompt, or by id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from geo_router.cli import app
from geo_router.intake.secrets import write_new_secrets_file
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.store import Store, make_engine
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.subscribers_repo import SubscribersRepo

runner = CliRunner()
NUMBER = "0812-3456-7890"


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_router: Any) -> Any:
    """An embedded store in tmp_path with one subscriber; (data dir, subscriber id)."""
    monkeypatch.setenv("GEO_ROUTER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GEO_ROUTER_DATABASE_URL", raising=False)
    secrets = write_new_secrets_file(tmp_path / "secrets.json")
    point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
    with Store.from_url(f"sqlite:///{tmp_path / 'geo_router.sqlite3'}") as store:
        registry = SubscriberService(
            SubscribersRepo(store.engine), ReportsRepo(store.engine), secrets, lambda: demo_router
        )
        created = registry.create(NUMBER, name="Siti", lon=point.x, lat=point.y)
    return tmp_path, created.id, secrets


def _count(data_dir: Path) -> int:
    engine = make_engine(f"sqlite:///{data_dir / 'geo_router.sqlite3'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM subscribers")).scalar_one())
    finally:
        engine.dispose()


def test_erase_by_a_number_at_the_prompt(registered: Any) -> None:
    data_dir, subscriber_id, secrets = registered
    done = runner.invoke(app, ["subscribers", "erase"], input=f"{NUMBER}\n")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary == {
        "subscriber_id": subscriber_id,
        "reports_erased": 0,
        "idempotency_keys_deleted": 0,
    }
    assert "3456" not in done.output  # the prompt hides what was typed
    assert _count(data_dir) == 0
    raw = (data_dir / "geo_router.sqlite3").read_bytes()
    assert secrets.hash_phone("+6281234567890").encode() not in raw  # secure_delete


def test_erase_by_id_and_unknown_ids(registered: Any) -> None:
    data_dir, subscriber_id, _ = registered
    missing = runner.invoke(app, ["subscribers", "erase", "--id", "nope"])
    assert missing.exit_code == 2 and "no subscriber with id 'nope'" in missing.output
    done = runner.invoke(app, ["subscribers", "erase", "--id", subscriber_id])
    assert done.exit_code == 0, done.output
    assert _count(data_dir) == 0
    bad = runner.invoke(app, ["subscribers", "erase"], input="12\n")
    assert bad.exit_code == 2 and "error:" in bad.output
