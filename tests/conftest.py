"""Shared fixtures: the demo city, the real data sets beside the repo, databases."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from api.settings import api_settings
from geo_router import settings as _settings
from geo_router.settings import DEMO_CITY_PROFILE

# Tests never touch a user's real store: every command and app they start (in process or as a
# subprocess, which inherits the environment) uses a data dir of the test session's own.
_TEST_DATA_DIR = tempfile.mkdtemp(prefix="geo_router_tests_")
os.environ["GEO_ROUTER_DATA_DIR"] = _TEST_DATA_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the test session's data dir."""
    shutil.rmtree(_TEST_DATA_DIR, ignore_errors=True)


#: The cached settings factories (each reads the environment once per process).
_SETTINGS_FACTORIES = (
    _settings.routing_settings,
    _settings.store_settings,
    _settings.secrets_settings,
    _settings.intake_settings,
    _settings.server_settings,
    api_settings,
)


@pytest.fixture(autouse=True)
def _fresh_settings() -> None:
    """Tests change the environment between them: each reads its settings afresh."""
    for factory in _SETTINGS_FACTORIES:
        factory.cache_clear()


REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("GEO_ROUTER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data sets (``../shared/data``); skips when this clone has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data sets not found at {SHARED_DATA} (a fresh clone has none; "
            "set GEO_ROUTER_SHARED_DATA to point at them)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_profile_path() -> Path:
    """The bundled demo city's profile."""
    return DEMO_CITY_PROFILE


@pytest.fixture(scope="session")
def demo_router(demo_profile_path: Path):  # type: ignore[no-untyped-def]
    """A Router over the demo city, built once per test session."""
    from geo_router.city.router import Router

    return Router.from_profile(demo_profile_path)


def _postgres_url() -> str | None:
    return os.environ.get("GEO_ROUTER_TEST_DATABASE_URL")


@contextmanager
def _fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file in ``folder``, or a PostgreSQL schema.

    The PostgreSQL variant skips with a reason unless GEO_ROUTER_TEST_DATABASE_URL is set; its
    schema is dropped afterwards.
    """
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'test.sqlite3'}"
        return
    url = _postgres_url()
    if not url:
        pytest.skip("PostgreSQL tests need GEO_ROUTER_TEST_DATABASE_URL (set by .ci/run)")
    import uuid

    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema},public"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite in tmp_path, then PostgreSQL/PostGIS when configured.

    The PostgreSQL variant skips with a reason unless GEO_ROUTER_TEST_DATABASE_URL is set; each
    test gets its own schema there, dropped afterwards.
    """
    with _fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=_BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``database_url`` shared by the tests of one module (one app per backend)."""
    with _fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Any]:
    """An engine on ``database_url`` with every migration applied, disposed afterwards."""
    from geo_router.store import make_engine, upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def copy_of_demo_city(folder: Path, name: str = "Kota Lain") -> Path:
    """A copy of the demo city's folder whose profile names the city ``name``; its profile path."""
    shutil.copytree(DEMO_CITY_PROFILE.parent, folder)
    profile = folder / DEMO_CITY_PROFILE.name
    text = profile.read_text(encoding="utf-8")
    profile.write_text(text.replace('name = "Kota Contoh"', f'name = "{name}"', 1))
    return profile
