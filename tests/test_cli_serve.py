"""``geo-router serve``: URLs, open mode on loopback, refusal elsewhere without keys."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import copy_of_demo_city
from typer.testing import CliRunner

from geo_router.cli import app
from geo_router.cli import serve as serve_module
from geo_router.settings import DEMO_CITY_PROFILE, StoreSettings
from geo_router.store import Store, describe_store, make_engine
from geo_router.store.city_record import claim_city_profile, recorded_city

ENV = (
    "GEO_ROUTER_CITY",
    "GEO_ROUTER_HOST",
    "GEO_ROUTER_PORT",
    "GEO_ROUTER_WORKERS",
    "PROMETHEUS_MULTIPROC_DIR",  # serve sets it for --workers N
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean GEO_ROUTER_* environment (restored afterwards) with its own data dir."""
    for name in ENV:
        monkeypatch.setenv(name, "")  # recorded, so teardown restores whatever was there
        monkeypatch.delenv(name)
    monkeypatch.setenv("GEO_ROUTER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        serve_module, "supervise", lambda config, timeout: calls.append(_called(config, timeout))
    )
    return calls


def _called(config: Any, timeout: float) -> dict[str, Any]:
    """What serve handed the supervisor (uvicorn's config), as a dict."""
    names = ("host", "port", "workers", "factory", "http", "timeout_keep_alive")
    return {"target": config.app, "start_timeout": timeout} | {n: getattr(config, n) for n in names}


def test_serve_on_loopback_without_keys_runs_open(
    env: Path, uvicorn_calls: list[dict[str, Any]]
) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--city", str(DEMO_CITY_PROFILE), "--port", "8123", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/docs" in result.output
    assert "http://127.0.0.1:8123/" in result.output
    assert "OPEN MODE" in result.output
    (call,) = uvicorn_calls
    assert call["target"] == "api.main:create_app_from_env"
    assert call["factory"] is True
    assert call["workers"] == 2 and call["port"] == 8123 and call["host"] == "127.0.0.1"
    assert call["http"] == "api.connections:GuardedHttpToolsProtocol"  # header timeout, cap
    assert call["timeout_keep_alive"] == 5 and call["start_timeout"] == 120
    assert os.environ["GEO_ROUTER_CITY"] == str(DEMO_CITY_PROFILE.resolve())


def test_serve_refuses_a_public_address_without_keys(
    env: Path, uvicorn_calls: list[dict[str, Any]]
) -> None:
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "refusing" in result.output and "keys create" in result.output
    assert uvicorn_calls == []


def test_serve_a_public_address_with_a_key(env: Path, uvicorn_calls: list[dict[str, Any]]) -> None:
    with Store.open(StoreSettings(data_dir=env, _env_file=None)) as store:
        store.keys.create("admin", "ops")
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "9000"])
    assert result.exit_code == 0, result.output
    assert "protected: 1 active API key" in result.output
    assert uvicorn_calls[0]["host"] == "0.0.0.0"


def test_serve_refuses_a_missing_city(env: Path, uvicorn_calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", "--city", str(env / "nope.toml")])
    assert result.exit_code != 0
    assert "nope.toml" in result.output
    assert uvicorn_calls == []


def test_serve_module_does_not_import_the_web_layer() -> None:
    code = (
        "import sys, geo_router.cli.serve; "
        "bad = [m for m in sys.modules if m == 'api' or m.startswith(('api.', 'fastapi'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_helpers() -> None:
    assert serve_module.is_loopback_host("localhost")
    assert not serve_module.is_loopback_host("10.0.0.1")
    assert serve_module.base_url("::1", 80) == "http://[::1]:80"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_serve(
    data_dir: Path, port: int, *args: str, **env_extra: str
) -> subprocess.Popen[bytes]:
    """``geo-router serve --port PORT *args`` in a subprocess, with a clean GEO_ROUTER_* env."""
    env = {**os.environ, "GEO_ROUTER_DATA_DIR": str(data_dir)}
    for name in ENV:
        env.pop(name, None)
    env.update(env_extra)
    cmd = [sys.executable, "-c", "from geo_router.cli import main; main()", "serve"]
    cmd += ["--port", str(port), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_serve_for_real(tmp_path: Path) -> None:
    """Starts uvicorn through the CLI: /livez at once, /readyz once the city is loaded."""
    port = _free_port()
    proc = _start_serve(tmp_path, port)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        live = ready = None
        while time.monotonic() < deadline and ready != 200:
            try:
                live = httpx.get(f"{base}/livez", timeout=2).status_code
                ready = httpx.get(f"{base}/readyz", timeout=2).status_code
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert live == 200 and ready == 200
        r = httpx.get(f"{base}/v1/route", params={"lon": 107.6, "lat": -6.9}, timeout=5)
        assert r.status_code == 200 and r.json()["zones"]["kelurahan"]["zone_id"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert b"OPEN MODE" in out


@pytest.mark.slow
def test_two_workers_count_every_request_in_metrics(tmp_path: Path) -> None:
    """With --workers 2 a scrape reaches one worker, yet counts both workers' requests."""
    port = _free_port()
    # serve makes a temporary metrics folder when unset; a known one lets the test look inside
    proc = _start_serve(
        tmp_path, port, "--workers", "2", GEO_ROUTER_METRICS_DIR=str(tmp_path / "metrics")
    )
    base = f"http://127.0.0.1:{port}"
    line = 'geo_router_http_requests_total{method="GET",route="/v1/route",status="200"}'
    try:
        deadline = time.monotonic() + 180
        ready = 0
        while time.monotonic() < deadline and ready < 10:  # both workers up: 10 in a row
            try:
                status = httpx.get(f"{base}/readyz", timeout=2).status_code
            except httpx.TransportError:
                status = 0
            ready = ready + 1 if status == 200 else 0
            time.sleep(0.1)
        assert ready >= 10
        for _ in range(40):  # new connections: spread over both workers
            r = httpx.get(f"{base}/v1/route", params={"lon": 107.6, "lat": -6.9}, timeout=5)
            assert r.status_code == 200
        counts = set()
        for _ in range(6):
            text = httpx.get(f"{base}/metrics", timeout=5).text
            counts.add(next(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)))
        assert counts == {40.0}
        # prometheus_client's multiprocess mode: each worker's counters in a file of its own
        assert len(list((tmp_path / "metrics").glob("counter_*.db"))) == 2
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _refusal(store: str, other: str = "Kota Lain") -> str:
    return (
        f"error: this store ({store}) was created for the city 'Kota Contoh'; refusing to serve "
        f"'{other}' from it. Choose another data dir (GEO_ROUTER_DATA_DIR) or database "
        f"(GEO_ROUTER_DATABASE_URL) for '{other}'."
    )


def test_serve_says_which_store_and_records_the_city(
    env: Path, uvicorn_calls: list[dict[str, Any]]
) -> None:
    result = CliRunner().invoke(app, ["serve", "--city", str(DEMO_CITY_PROFILE)])
    assert result.exit_code == 0, result.output
    assert f"store: {(env / 'geo_router.sqlite3').resolve()}" in result.stderr.splitlines()
    assert "store:" not in result.stdout
    engine = make_engine(f"sqlite:///{env / 'geo_router.sqlite3'}")
    try:
        record = recorded_city(engine)
    finally:
        engine.dispose()
    assert record is not None and record.name == "Kota Contoh"


def test_serve_notes_a_changed_profile(
    env: Path, tmp_path: Path, uvicorn_calls: list[dict[str, Any]]
) -> None:
    profile = copy_of_demo_city(tmp_path / "city", "Kota Contoh")
    assert CliRunner().invoke(app, ["serve", "--city", str(profile)]).exit_code == 0
    with profile.open("a", encoding="utf-8") as f:
        f.write("\n# edited\n")
    result = CliRunner().invoke(app, ["serve", "--city", str(profile)])
    assert result.exit_code == 0, result.output
    (note,) = [line for line in result.stderr.splitlines() if line.startswith("info:")]
    assert "'Kota Contoh' changed since this store" in note
    assert len(uvicorn_calls) == 2


def test_serve_refuses_a_store_of_another_city(
    env: Path, tmp_path: Path, uvicorn_calls: list[dict[str, Any]]
) -> None:
    assert CliRunner().invoke(app, ["serve"]).exit_code == 0  # the demo city: recorded
    other = copy_of_demo_city(tmp_path / "other")
    result = CliRunner().invoke(app, ["serve", "--city", str(other)])
    assert result.exit_code == 2
    store = str((env / "geo_router.sqlite3").resolve())
    assert result.stderr.splitlines() == [f"store: {store}", _refusal(store)]
    assert "Traceback" not in result.output
    assert len(uvicorn_calls) == 1  # only the first serve started uvicorn


def test_serve_refuses_another_city_in_a_real_process(tmp_path: Path) -> None:
    """The console script: one line, exit code 2, no traceback, uvicorn never starts."""
    data = tmp_path / "data"
    with Store.open(StoreSettings(data_dir=data, database_url=None, _env_file=None)) as store:
        claim_city_profile(store.engine, DEMO_CITY_PROFILE)
    other = copy_of_demo_city(tmp_path / "other")
    proc = _start_serve(data, _free_port(), "--city", str(other), GEO_ROUTER_DATABASE_URL="")
    out, _ = proc.communicate(timeout=120)
    text = out.decode()
    assert proc.returncode == 2, text
    store = describe_store(StoreSettings(data_dir=data, database_url=None, _env_file=None))
    assert _refusal(store) in text.splitlines()
    assert "Traceback" not in text and "Uvicorn running" not in text


def test_workers_get_what_serve_checked_and_a_metrics_folder(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, str | None]] = []

    def run(config: Any, timeout: float) -> None:
        folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        seen.append({"folder": folder, "exists": str(Path(folder).is_dir())})
        seen.append({name: os.environ.get(name) for name in ENV[:4]})

    monkeypatch.setattr(serve_module, "supervise", run)
    result = CliRunner().invoke(app, ["serve", "--workers", "3", "--port", "8124"])
    assert result.exit_code == 0, result.output
    folder, names = seen
    assert folder["exists"] == "True"
    assert not Path(str(folder["folder"])).exists()  # the temporary folder is gone
    assert names == {
        "GEO_ROUTER_CITY": str(DEMO_CITY_PROFILE.resolve()),
        "GEO_ROUTER_HOST": "127.0.0.1",
        "GEO_ROUTER_PORT": "8124",
        "GEO_ROUTER_WORKERS": "3",
    }


def test_a_given_metrics_folder_is_emptied_of_old_files(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uvicorn_calls: list[dict[str, Any]]
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old run")
    (folder / "notes.txt").write_text("kept")
    monkeypatch.setenv("GEO_ROUTER_METRICS_DIR", str(folder))
    result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_one_worker_keeps_its_metrics_in_memory(
    env: Path, uvicorn_calls: list[dict[str, Any]]
) -> None:
    assert CliRunner().invoke(app, ["serve"]).exit_code == 0
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_a_bad_setting_is_one_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEO_ROUTER_PORT", "eighty")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: invalid setting GEO_ROUTER_PORT: ")
    assert "Traceback" not in result.output


def test_uvicorn_factory_refuses_a_public_host_without_keys(tmp_path: Path) -> None:
    """Started by uvicorn itself (not ``serve``): the same one-line refusal, no traceback."""
    from geo_router.settings import PUBLIC_WITHOUT_KEYS

    env = {name: value for name, value in os.environ.items() if name not in ENV}
    env.update(GEO_ROUTER_DATA_DIR=str(tmp_path), GEO_ROUTER_HOST="0.0.0.0")
    cmd = [sys.executable, "-m", "uvicorn", "api.main:create_app_from_env", "--factory"]
    cmd += ["--host", "0.0.0.0", "--port", str(_free_port())]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == ["error: " + PUBLIC_WITHOUT_KEYS.format(host="0.0.0.0")], output
    assert "Traceback" not in output
    assert "OPEN" not in output


def test_serve_is_not_open_once_every_key_is_revoked(
    env: Path, uvicorn_calls: list[dict[str, Any]]
) -> None:
    with Store.open(StoreSettings(data_dir=env, _env_file=None)) as store:
        _key, record = store.keys.create("admin", "ops")
        store.keys.revoke(record.id)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    assert "OPEN MODE" not in result.output
    assert "revoked" in result.output
    refused = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert refused.exit_code != 0 and "refusing" in refused.output
