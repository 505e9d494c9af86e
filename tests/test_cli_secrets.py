"""``geo-router secrets init`` and the one-line refusal of production without secrets."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from geo_router.cli import app
from geo_router.intake.secrets import SECRETS_FILENAME, Secrets
from geo_router.settings import SecretsSettings, StoreSettings


def test_init_writes_a_0600_file_and_prints_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "deploy" / "secrets.json"
    result = CliRunner().invoke(app, ["secrets", "init", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert set(data) == {"pepper", "encryption_key"}
    assert data["pepper"] not in result.output and data["encryption_key"] not in result.output
    assert f"export GEO_ROUTER_SECRETS_FILE={path}" in result.output
    secrets = SecretsSettings(secrets_file=path, production=True, _env_file=None)
    loaded = Secrets.load(secrets, StoreSettings(_env_file=None))
    assert loaded.decrypt(loaded.encrypt("0812 3456 789")) == "0812 3456 789"


def test_init_defaults_to_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEO_ROUTER_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["secrets", "init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / SECRETS_FILENAME).is_file()


def test_init_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text('{"pepper": "keep me", "encryption_key": "and me"}')
    result = CliRunner().invoke(app, ["secrets", "init", "--file", str(path)])
    assert result.exit_code == 2
    assert "never overwritten" in result.output
    assert json.loads(path.read_text())["pepper"] == "keep me"


def _production_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEO_ROUTER_")}
    env.update(GEO_ROUTER_PRODUCTION="true", GEO_ROUTER_DATA_DIR=str(tmp_path / "data"))
    return env


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "geo_router", "serve", "--port", "8"],
        [sys.executable, "-m", "uvicorn", "api.main:create_app_from_env", "--factory"],
    ],
    ids=["geo-router serve", "uvicorn factory"],
)
def test_production_without_secrets_is_one_line(tmp_path: Path, command: list[str]) -> None:
    done = subprocess.run(
        command,
        env=_production_env(tmp_path),
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "geo-router secrets init" in errors[0]
