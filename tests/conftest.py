"""Shared fixtures: the demo city, the real data sets beside the repo, databases."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
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


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite in tmp_path, then PostgreSQL/PostGIS when configured.

    The PostgreSQL variant skips with a reason unless GEO_ROUTER_TEST_DATABASE_URL is set; each
    test gets its own schema there, dropped afterwards.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
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
    yield f"{url}{sep}options=-csearch_path%3D{schema},public"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


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


#: The GEO_ROUTER_* variables a served test process must not inherit from the test run.
SERVE_ENV = (
    "GEO_ROUTER_CITY",
    "GEO_ROUTER_HOST",
    "GEO_ROUTER_PORT",
    "GEO_ROUTER_WORKERS",
    "GEO_ROUTER_METRICS_DIR",
    "GEO_ROUTER_DATABASE_URL",
    "PROMETHEUS_MULTIPROC_DIR",
)


class Served:
    """``geo-router serve`` in a subprocess of its own session, its output in a log file."""

    def __init__(self, data_dir: Path, *args: str, **env_extra: str) -> None:
        import socket
        import subprocess
        import sys

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"serve_{self.port}.log"
        env = {k: v for k, v in os.environ.items() if k not in SERVE_ENV}
        env |= {"GEO_ROUTER_DATA_DIR": str(data_dir), **env_extra}
        cmd = [sys.executable, "-c", "from geo_router.cli import main; main()", "serve"]
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [*cmd, "--port", str(self.port), *args],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        """Everything the server logged so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180.0, streak: int = 5) -> None:
        """Until ``/readyz`` answers 200 ``streak`` times in a row (every worker up)."""
        import time

        import httpx

        deadline, seen = time.monotonic() + timeout, 0
        while time.monotonic() < deadline and seen < streak:
            assert self.process.poll() is None, self.output()
            try:
                seen = seen + 1 if httpx.get(self.base + "/readyz", timeout=5).is_success else 0
            except httpx.TransportError:
                seen = 0
            time.sleep(0.05 if seen else 0.3)
        assert seen >= streak, self.output()

    def wait_for(self, text: str, timeout: float = 180.0) -> None:
        """Until the log holds ``text``."""
        import time

        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the supervisor's session, SIGKILL it if it lingers."""
        import signal
        import subprocess

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start ``geo-router serve`` processes (``serve(*args, **env)``); all stopped afterwards."""
    started: list[Served] = []

    def start(*args: str, **env: str) -> Served:
        served = Served(tmp_path / f"data{len(started)}", *args, **env)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()
