"""Secrets: pepper + Fernet, loading order, generated file, production refusal."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_router.errors import ConfigurationError
from geo_router.intake.secrets import SECRETS_FILENAME, Secrets
from geo_router.settings import SecretsSettings, StoreSettings

KEY = Fernet.generate_key().decode()
PEPPER = "pepper-for-tests-0123456789"


def _settings(tmp_path: Path, **kw: object) -> tuple[SecretsSettings, StoreSettings]:
    """The secrets and store parts ``Secrets.load`` takes, environment ignored."""
    secrets: dict[str, object] = {
        "pepper": None,
        "encryption_key": None,
        "secrets_file": None,
        "production": False,
    }
    store: dict[str, object] = {"data_dir": tmp_path, "database_url": None}
    for name, value in kw.items():
        (store if name in store else secrets)[name] = value
    return SecretsSettings(**secrets), StoreSettings(**store)  # type: ignore[arg-type]


def test_hash_is_keyed_and_stable() -> None:
    a, b = Secrets(PEPPER, KEY), Secrets(PEPPER + "x", KEY)
    assert a.hash_phone("+6281234567890") == Secrets(PEPPER, KEY).hash_phone("+6281234567890")
    assert a.hash_phone("+6281234567890") != b.hash_phone("+6281234567890")
    assert len(a.hash_phone("+6281234567890")) == 64


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_encrypt_round_trip(text: str) -> None:
    secrets = Secrets(PEPPER, KEY)
    token = secrets.encrypt(text)
    assert secrets.decrypt(token) == text
    assert token != secrets.encrypt(text)  # fresh IV each time


def test_wrong_key_is_a_configuration_error() -> None:
    token = Secrets(PEPPER, KEY).encrypt("Jl. Merdeka 1")
    other = Secrets(PEPPER, Fernet.generate_key().decode())
    with pytest.raises(ConfigurationError, match="cannot decrypt"):
        other.decrypt(token)
    with pytest.raises(ConfigurationError, match="cannot decrypt"):
        other.decrypt("garbage")


def test_key_rotation_decrypts_old_tokens() -> None:
    old = Secrets(PEPPER, KEY)
    token = old.encrypt("x")
    new_key = Fernet.generate_key().decode()
    rotated = Secrets(PEPPER, f"{new_key},{KEY}")
    assert rotated.decrypt(token) == "x"
    assert Secrets(PEPPER, new_key).decrypt(rotated.encrypt("y")) == "y"


@pytest.mark.parametrize(("pepper", "key"), [("short", KEY), (PEPPER, "not-a-key"), (PEPPER, "")])
def test_bad_secrets_refused(pepper: str, key: str) -> None:
    with pytest.raises(ConfigurationError):
        Secrets(pepper, key)


def test_repr_hides_values() -> None:
    assert PEPPER not in repr(Secrets(PEPPER, KEY)) and KEY not in repr(Secrets(PEPPER, KEY))


def test_load_from_environment_settings(tmp_path: Path) -> None:
    loaded = Secrets.load(*_settings(tmp_path, pepper=PEPPER, encryption_key=KEY))
    assert loaded.pepper == PEPPER and loaded.source == "environment"
    assert not (tmp_path / SECRETS_FILENAME).exists()


def test_half_configured_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="GEO_ROUTER_ENCRYPTION_KEY is not set"):
        Secrets.load(*_settings(tmp_path, pepper=PEPPER))


def test_load_from_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"pepper": PEPPER, "encryption_key": KEY}))
    assert Secrets.load(*_settings(tmp_path, secrets_file=path, production=True)).pepper == PEPPER


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "not readable JSON"),
        ("[]", "expected a JSON object"),
        (json.dumps({"pepper": PEPPER}), "'encryption_key' is missing"),
    ],
)
def test_bad_secrets_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=message) as info:
        Secrets.load(*_settings(tmp_path, secrets_file=path))
    assert str(path) in info.value.message


def test_embedded_default_generates_0600_file_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data_dir = tmp_path / "data"
    first = Secrets.load(*_settings(data_dir))
    path = data_dir / SECRETS_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Secrets.load(*_settings(data_dir))
    assert (first.pepper, first.encryption_key) == (second.pepper, second.encryption_key)
    assert first.pepper not in caplog.text and first.encryption_key not in caplog.text
    assert [p.name for p in data_dir.iterdir()] == [SECRETS_FILENAME]  # no temp file left


def test_production_refuses_without_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="production refuses to start"):
        Secrets.load(*_settings(tmp_path, production=True))
    assert not (tmp_path / SECRETS_FILENAME).exists()


def test_external_database_needs_configured_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="external database"):
        Secrets.load(*_settings(tmp_path, database_url="postgresql://x@y/z"))
    sqlite = _settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert Secrets.load(*sqlite).source.startswith("secrets file")
