"""``geo-router serve``: run the HTTP API under uvicorn.

The library never imports the web layer: uvicorn gets the import string of the app factory
and the settings travel through ``GEO_ROUTER_*`` environment variables (each worker builds
its own app from them).

With ``--workers N`` (N > 1) a scrape of ``/metrics`` reaches one worker, so the workers keep
their metrics in prometheus_client's multiprocess mode: ``serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` for them to ``GEO_ROUTER_METRICS_DIR``, or to a temporary folder
removed when the server stops, after deleting the metric files a previous run left there. A
``PROMETHEUS_MULTIPROC_DIR`` already in the environment is used as it is (whatever N), and
cleared of old files alike.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from geo_router.cli.app import app
from geo_router.errors import GeoRouterError
from geo_router.intake.secrets import Secrets
from geo_router.settings import Settings, is_loopback_host

#: The uvicorn factory that builds the app from the environment.
APP_FACTORY = "api.main:create_app_from_env"

#: prometheus_client's multiprocess mode: set, every metric of the process lives in files there.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

EXIT_REFUSED = 2


def base_url(host: str, port: int) -> str:
    """``http://host:port`` (IPv6 literals bracketed)."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def count_active_keys(settings: Settings) -> int:
    """Active API keys in the configured store (opens and migrates the embedded default).

    Says which store on stderr and claims it for ``settings.city`` first: a store created
    for another city raises ``StoreCityMismatchError`` (one line, before uvicorn starts).
    """
    from geo_router.store import Store, claim_city_profile, describe_store

    typer.echo(f"store: {describe_store(settings)}", err=True)
    with Store.open(settings) as store:
        note = claim_city_profile(store.engine, settings.city).note
        if note:
            typer.echo(f"info: {note}", err=True)
        return int(store.keys.count_active())


def metrics_folder(settings: Settings) -> tuple[Path | None, bool]:
    """The workers' multiprocess metrics folder, emptied of old metric files, and whether it
    is a temporary one to remove afterwards; (None, False) for one worker.

    prometheus_client adds up every file in the folder, so the files of an earlier run would
    count its requests again: they are deleted first.
    """
    preset = os.environ.get(MULTIPROC_DIR_ENV) or None
    if preset is None and settings.workers == 1:
        return None, False
    if preset is None and settings.metrics_dir is None:
        return Path(tempfile.mkdtemp(prefix="geo_router_metrics_")), True
    folder = Path(preset or str(settings.metrics_dir))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    return folder, False


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=EXIT_REFUSED)


@app.command("serve")
def serve(
    city: Annotated[
        Path | None, typer.Option(help="City profile (TOML); default GEO_ROUTER_CITY / demo city.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address; default 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default 8000.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes; default 1.")] = None,
) -> None:
    """Serve the HTTP API (docs at /docs, the map page at /).

    With no API key on a loopback address everything runs open; on any other address the
    service refuses to start until a key exists (``geo-router keys create``).
    """
    overrides = {"city": city, "host": host, "port": port, "workers": workers}
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"GEO_ROUTER_{name.upper()}"] = str(
                value.resolve() if isinstance(value, Path) else value
            )
    try:
        settings = Settings()
    except ValueError as exc:
        raise _fail(f"invalid GEO_ROUTER_* setting: {exc}") from None
    if not settings.city.is_file():
        raise _fail(f"city profile {settings.city} does not exist (--city or GEO_ROUTER_CITY)")
    try:
        Secrets.load(settings)  # refuse here, in one line, rather than in every worker
        active = count_active_keys(settings)
    except GeoRouterError as exc:
        raise _fail(exc.message) from None
    loopback = is_loopback_host(settings.host)
    if active == 0 and not loopback:
        raise _fail(
            f"refusing to serve on {settings.host} without API keys: anyone could use it. "
            "Create one with 'geo-router keys create --role admin --name ops', "
            "or bind to 127.0.0.1."
        )
    url = base_url(settings.host, settings.port)
    typer.echo(f"geo-router serving {settings.city}")
    typer.echo(f"  API docs:  {url}/docs")
    typer.echo(f"  map page:  {url}/")
    if active == 0:
        typer.secho(
            "  OPEN MODE: no API keys and bound to loopback; every local caller acts as admin.",
            fg=typer.colors.YELLOW,
        )
    else:
        typer.echo(f"  protected: {active} active API key(s); send 'Authorization: Bearer KEY'")
    os.environ.setdefault("GEO_ROUTER_CITY", str(settings.city))
    try:
        metrics_dir, temporary = metrics_folder(settings)
    except OSError as exc:
        raise _fail(f"cannot prepare the metrics folder: {exc}") from None
    if metrics_dir is not None:
        os.environ[MULTIPROC_DIR_ENV] = str(metrics_dir)

    import uvicorn

    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            access_log=False,
        )
    finally:
        if temporary and metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
