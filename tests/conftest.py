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
    _settings.validation_settings,
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
    from geo_router.store.engine import scratch_schema

    with scratch_schema(url) as scoped:
        yield scoped


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


# --- rows with encrypted fields, written straight into a store (secrets, rotation, backup)


def add_subscriber(engine: Any, secrets: Any, phone: str) -> str:
    """A subscriber with phone, name and address encrypted under ``secrets``; its id."""
    import sqlalchemy as sa

    from geo_router.store.engine import write_transaction
    from geo_router.store.schema import new_token_id, subscribers, utcnow
    from geo_router.store.sealed_homes import seal_home

    now = utcnow()
    subscriber_id = new_token_id()
    with write_transaction(engine) as conn:
        conn.execute(
            sa.insert(subscribers).values(
                id=subscriber_id,
                phone_hash=secrets.hash_phone(phone),
                phone_enc=secrets.encrypt(phone),
                name_enc=secrets.encrypt(f"Name of {phone}"),
                address_enc=secrets.encrypt(f"Jalan {phone[-3:]}"),
                home_enc=seal_home(secrets, 107.61, -6.91),
                zones={},
                responders={},
                verification_status="unverified",
                created_at=now,
                updated_at=now,
            )
        )
    return subscriber_id


def add_report(engine: Any, secrets: Any, phone: str, key: str, *, home: bool = False) -> str:
    """A report from ``phone`` with an Idempotency-Key answer holding its private fields;
    with ``home``, located at the caller's registered home (point and answer sealed)."""
    import json

    import sqlalchemy as sa

    from geo_router.store.engine import write_transaction
    from geo_router.store.schema import idempotency_keys, new_report_id, reports, utcnow
    from geo_router.store.sealed_homes import seal_home

    now = utcnow()
    report_id = new_report_id()
    private = {
        "reporter_phone_hash": secrets.hash_phone(phone),
        "reporter_phone_enc": secrets.encrypt(phone),
    }
    response: dict[str, Any] = {"id": report_id, **private}
    if home:
        response = {"sealed": secrets.encrypt(json.dumps(response))}
    with write_transaction(engine) as conn:
        conn.execute(
            sa.insert(reports).values(
                id=report_id,
                channel="call",
                category="fire",
                description="smoke",
                status="open",
                lon=None if home else 107.6,
                lat=None if home else -6.9,
                home_enc=seal_home(secrets, 107.61, -6.91) if home else None,
                location_source="registered_caller" if home else "given",
                decision={},
                flags=[],
                created_at=now,
                updated_at=now,
                **private,
            )
        )
        conn.execute(
            sa.insert(idempotency_keys).values(
                key=key,
                api_key_id="",
                request_hash="0" * 64,
                report_id=report_id,
                response=response,
                created_at=now,
            )
        )
    return report_id


def plaintexts(engine: Any, secrets: Any) -> dict[str, Any]:
    """Every encrypted value decrypted (and its hash checked) under ``secrets``."""
    import json

    import sqlalchemy as sa

    from geo_router.store.schema import idempotency_keys, reports, subscribers

    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for row in conn.execute(sa.select(subscribers)).mappings():
            phone = secrets.decrypt(row["phone_enc"])
            assert row["phone_hash"] == secrets.hash_phone(phone)
            out[row["id"]] = (
                phone,
                secrets.decrypt(row["name_enc"]),
                secrets.decrypt(row["address_enc"]),
                secrets.decrypt(row["home_enc"]),
            )
        for row in conn.execute(sa.select(reports)).mappings():
            phone = secrets.decrypt(row["reporter_phone_enc"])
            assert row["reporter_phone_hash"] == secrets.hash_phone(phone)
            home = row["home_enc"]
            out[row["id"]] = (phone, secrets.decrypt(home) if home is not None else None)
        for row in conn.execute(sa.select(idempotency_keys)).mappings():
            response = row["response"]
            if "sealed" in response:
                response = json.loads(secrets.decrypt(response["sealed"]))
            phone = secrets.decrypt(response["reporter_phone_enc"])
            assert response["reporter_phone_hash"] == secrets.hash_phone(phone)
            out[row["key"]] = phone
    return out


def _rehearsal_module() -> Any:
    """``benchmarks/rehearse_outage.py``, which owns the TCP proxy tests cut the database with."""
    import importlib.util
    import sys

    name = "geo_router_rehearse_outage"
    if name in sys.modules:
        return sys.modules[name]
    path = REPO_ROOT / "benchmarks" / "rehearse_outage.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def postgres_proxy_url(database_url: str) -> Iterator[tuple[str, Any]]:
    """``database_url`` (PostgreSQL only) through a proxy the test can cut and restore
    (``TcpProxy`` of ``benchmarks/rehearse_outage.py``: ``down()``, ``up()``).

    The machine's PostgreSQL is shared: tests never stop it, they cut their proxy to it.
    """
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("a PostgreSQL outage needs the PostgreSQL database")
    proxy = _rehearsal_module().TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.up()
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.down()


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
