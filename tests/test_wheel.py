"""The built wheel installs and serves anywhere: no checkout, no npm, no CDN.

The project's wheel is built, installed into a fresh virtualenv and run from a folder outside
the repository: the demo city, the migrations, the map page, Leaflet and the API docs' assets
must all come from installed packages.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0
#: Left out of the copy the wheel is built from: VCS data, caches, earlier build output.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "node_modules",
    "__pycache__",
    "*.pyc",
    ".hypothesis",
    ".ruff_cache",
    ".mypy_cache",
    ".pytest_cache",
    ".benchmarks",
    ".venv",
    "artifacts",
)
#: A point of the demo city well inside a kelurahan (Cikawao).
INSIDE = {"lon": 107.6, "lat": -6.9}
#: pip options: the wheel needs nothing from an index, and the commands touch no cache.
PIP_OFFLINE = ["--no-deps", "--no-index", "--no-cache-dir", "--disable-pip-version-check"]


def _run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _clean_env(data_dir: Path) -> dict[str, str]:
    """The environment of the installed commands: nothing that points back at the checkout.

    A ``--system-site-packages`` venv puts its own site-packages before the system one, so
    the wheel's copy beats the repository's editable install (its finder is appended to
    ``sys.meta_path``, after the path-based finder). Only ``PYTHONPATH``, the user site and
    the current directory could come first: PYTHONPATH is dropped, PYTHONNOUSERSITE set, and
    every command runs from a temporary folder. The GEO_ROUTER_* settings are dropped too, so
    the city is the wheel's demo city.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GEO_ROUTER_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PYTHONNOUSERSITE"] = "1"
    env["GEO_ROUTER_DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built without isolation (setuptools, wheel: the dev extra).

    Built from a copy of the working tree: an in-place build would write ``build/`` and
    ``*.egg-info`` into the checkout, and setuptools reuses ``build/lib``, so files deleted
    from the source could linger in the wheel.
    """
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (dev extra)")
    source = tmp_path_factory.mktemp("source") / "geo_router"
    shutil.copytree(REPO_ROOT, source, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheelhouse")
    build = [sys.executable, "-m", "pip", "wheel", *PIP_OFFLINE, "--no-build-isolation"]
    _run([*build, "-w", str(out), "."], cwd=source)
    (built,) = out.glob("geo_router-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv reusing this environment's dependencies, with the wheel installed in it."""
    folder = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(folder)])
    python = folder / "bin" / "python"
    # The system's pip, run by the venv's python, installs into the venv; it leaves the
    # editable install outside the venv alone ("Not uninstalling ... outside environment").
    _run(
        [str(python), "-m", "pip", "install", *PIP_OFFLINE, "--force-reinstall", str(wheel)],
        cwd=folder,
        env=_clean_env(folder / "data"),
    )
    assert (folder / "bin" / "geo-router").is_file()
    return folder


def _site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3*/site-packages")
    return found.resolve()


def test_wheel_ships_the_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "geo_router/py.typed",
        "geo_router/store/migrations/env.py",
        "api/static/map.html",
        "api/static/map.js",
        "api/static/map.css",
        "api/routers/docs.py",
        "zones_data/__init__.py",
        "zones_data/demo_city/city.toml",
    }
    for folder in (
        "geo_router/store/migrations/versions",
        "zones_data/demo_city",
        "zones_data/examples",
    ):
        expected |= {
            path.relative_to(REPO_ROOT).as_posix()
            for path in (REPO_ROOT / folder).iterdir()
            if path.is_file() and path.suffix != ".pyc"
        }
    assert not expected - names, sorted(expected - names)
    assert len([n for n in names if n.startswith("geo_router/store/migrations/versions/")]) >= 4
    assert not [n for n in names if n.startswith(("tests/", "node_modules/", "package"))]


def test_installed_packages_win_over_the_checkout(venv: Path, tmp_path: Path) -> None:
    code = (
        "import json, geo_router, api, zones_data, api.routers.mapview as m; "
        "print(json.dumps([geo_router.__file__, api.__file__, zones_data.__file__, "
        "str(zones_data.DEMO_CITY_PROFILE), str(m.STATIC_DIR)]))"
    )
    out = _run(
        [str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, env=_clean_env(tmp_path)
    ).stdout
    site = _site_packages(venv)
    for found in json.loads(out.strip().splitlines()[-1]):
        path = Path(found).resolve()
        assert path.is_relative_to(site), f"{found} is not in the venv ({site})"
        assert not path.is_relative_to(REPO_ROOT), found
    assert (site / "zones_data" / "demo_city" / "city.toml").is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``VENV/bin/geo-router serve`` (no --city) from a folder outside the repository."""
    workdir = tmp_path_factory.mktemp("outside")
    log_path = workdir / "serve.log"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(venv / "bin" / "geo-router"), "serve", "--port", str(port)],
            cwd=workdir,
            env=_clean_env(workdir / "data"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        status = None
        while status != 200:
            if proc.poll() is not None:
                pytest.fail(f"geo-router serve exited ({proc.returncode}):\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"/readyz not 200 within {READY_TIMEOUT_S:.0f} s ({status}):\n"
                    + log_path.read_text()
                )
            try:
                status = httpx.get(f"{base}/readyz", timeout=2).status_code
            except httpx.TransportError:
                status = None
            if status != 200:
                time.sleep(0.25)
        yield base, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def test_installed_service_serves_the_wheels_demo_city(
    served: tuple[str, Path], venv: Path
) -> None:
    base, log_path = served
    demo_profile = _site_packages(venv) / "zones_data" / "demo_city" / "city.toml"
    assert f"serving {demo_profile}" in log_path.read_text()
    r = httpx.get(f"{base}/v1/route", params=INSIDE, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["zones"]) == {"kelurahan", "kecamatan", "fire_district", "police_sector"}
    kelurahan = body["zones"]["kelurahan"]
    assert kelurahan["status"] == "inside"
    assert kelurahan["zone_id"]
    assert any(body["responders"].values())
    assert httpx.get(f"{base}/v1/info", timeout=10).json()["city"] == "Kota Contoh"


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/", "text/html", "/vendor/leaflet/leaflet.js"),
        ("/map", "text/html", '<script type="module" src="/static/map.js">'),
        ("/static/map.js", "text/javascript", "/v1/route"),
        ("/static/map.css", "text/css", ".panel"),
        ("/vendor/leaflet/leaflet.js", "text/javascript", "Leaflet 1.9"),
        ("/vendor/leaflet/leaflet.css", "text/css", ".leaflet-container"),
        ("/vendor/leaflet/images/marker-icon.png", "image/png", ""),
        ("/docs", "text/html", "/vendor/docs/swagger-ui-bundle.js"),
        ("/vendor/docs/swagger-ui-bundle.js", "text/javascript", "SwaggerUIBundle"),
        ("/vendor/docs/swagger-ui.css", "text/css", ".swagger-ui"),
        ("/redoc", "text/html", "/vendor/docs/redoc.standalone.js"),
        ("/vendor/docs/redoc.standalone.js", "text/javascript", "Redoc"),
        ("/openapi.json", "application/json", "/v1/route"),
    ],
)
def test_installed_service_serves_its_pages_and_assets(
    served: tuple[str, Path], path: str, content_type: str, marker: str
) -> None:
    base, _ = served
    r = httpx.get(f"{base}{path}", timeout=10)
    assert r.status_code == 200, (path, r.text[:300])
    assert r.headers["content-type"].split(";")[0] == content_type
    assert marker in r.text if marker else r.content.startswith(b"\x89PNG")
