"""``geo-router serve``: run the HTTP API under uvicorn.

The library never imports the web layer: uvicorn gets the import string of the app factory,
and each worker process builds its app from its own environment (as uvicorn and gunicorn
require). ``serve`` puts there what it checked: ``GEO_ROUTER_CITY`` (resolved),
``GEO_ROUTER_HOST``, ``GEO_ROUTER_PORT`` and ``GEO_ROUTER_WORKERS``, whether they came from its
options, the environment or ``.env``.

With ``--workers N`` (N > 1) a scrape of ``/metrics`` reaches one worker, so the workers keep
their metrics in prometheus_client's multiprocess mode: ``serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` for them to ``GEO_ROUTER_METRICS_DIR``, or to a temporary folder
removed when the server stops, after deleting the metric files a previous run left there. A
``PROMETHEUS_MULTIPROC_DIR`` already in the environment is used as it is (whatever N), and
cleared of old files alike.

No glibc malloc settings are made: batches once page-faulted their memory in again in every
worker thread, but glibc's dynamic mmap threshold now keeps it mapped (measured: 0-5 page
faults and the same CPU time per 10,000-point batch with or without ``MALLOC_TRIM_THRESHOLD_``
and ``MALLOC_MMAP_THRESHOLD_``). An operator may still set them: workers inherit them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geo_router.cli.app import app
from geo_router.cli.supervisor import raise_open_files_limit, supervise
from geo_router.errors import GeoRouterError
from geo_router.intake.secrets import Secrets
from geo_router.settings import (
    PUBLIC_WITHOUT_KEYS,
    RoutingSettings,
    ServerSettings,
    StoreSettings,
    is_loopback_host,
    load_settings,
    secrets_settings,
    store_settings,
)

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "APP_FACTORY",
    "MULTIPROC_DIR_ENV",
    "base_url",
    "count_keys",
    "is_loopback_host",
    "metrics_folder",
    "serve",
    "uvicorn_config",
    "worker_environment",
]

#: The uvicorn factory that builds the app from the environment.
APP_FACTORY = "api.main:create_app_from_env"

#: uvicorn's HTTP protocol with a header timeout and a connection cap per client.
CONNECTION_PROTOCOL = "api.connections:GuardedHttpToolsProtocol"

#: prometheus_client's multiprocess mode: set, every metric of the process lives in files there.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

EXIT_REFUSED = 2


def base_url(host: str, port: int) -> str:
    """``http://host:port`` (IPv6 literals bracketed)."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def count_keys(
    store_settings: StoreSettings, city: Path, secrets: Secrets | None = None
) -> tuple[int, int]:
    """Active and all (revoked included) API keys in the configured store (opens and
    migrates the embedded default).

    Says which store on stderr and claims it for ``city`` first: a store created for another
    city raises ``StoreCityMismatchError`` (one line, before uvicorn starts). With ``secrets``,
    the store is checked for damage and against them first (``StoreIntegrityError``,
    ``StoreSecretsMismatchError``).
    """
    from geo_router.store import Store, claim_city_profile, describe_store
    from geo_router.store.secrets_check import check_for_service

    typer.echo(f"store: {describe_store(store_settings)}", err=True)
    with Store.open(store_settings, cipher=secrets) as store:
        note = claim_city_profile(store.engine, city).note
        if note:
            typer.echo(f"info: {note}", err=True)
        if secrets is not None:
            check_for_service(store.engine, secrets)
        return store.keys.count_active(), store.keys.count_all()


def worker_environment(
    routing: RoutingSettings, server: ServerSettings, metrics_dir: Path | None
) -> dict[str, str]:
    """The variables each worker process needs to build the app ``serve`` checked."""
    environment = {
        "GEO_ROUTER_CITY": str(routing.city.resolve()),
        "GEO_ROUTER_HOST": server.host,
        "GEO_ROUTER_PORT": str(server.port),
        "GEO_ROUTER_WORKERS": str(server.workers),
    }
    if metrics_dir is not None:
        environment[MULTIPROC_DIR_ENV] = str(metrics_dir)
    return environment


def metrics_folder(server: ServerSettings) -> tuple[Path | None, bool]:
    """The workers' multiprocess metrics folder, emptied of old metric files, and whether it
    is a temporary one to remove afterwards; (None, False) for one worker.

    prometheus_client adds up every file in the folder, so the files of an earlier run would
    count its requests again: they are deleted first.
    """
    preset = os.environ.get(MULTIPROC_DIR_ENV) or None
    if preset is None and server.workers == 1:
        return None, False
    if preset is None and server.metrics_dir is None:
        return Path(tempfile.mkdtemp(prefix="geo_router_metrics_")), True
    folder = Path(preset or str(server.metrics_dir))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    return folder, False


def uvicorn_config(server: ServerSettings) -> uvicorn.Config:
    """uvicorn's configuration of the served app: the guarded protocol and the timeouts.

    ``api.connections`` adds the header timeout and the connection cap per client (its own
    ``ServerSettings``) and sheds lower-class GETs unread when overloaded; uvicorn closes idle
    keep-alive connections after ``keep_alive_s``; the accept queue is ``backlog`` deep.
    There is no global ``limit_concurrency``: it would refuse emergencies alike; the app's
    admission control sheds lower classes instead.
    """
    import uvicorn

    return uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers,
        access_log=False,
        http=CONNECTION_PROTOCOL,
        timeout_keep_alive=server.keep_alive_s,
        backlog=server.backlog,
        timeout_graceful_shutdown=30,
    )


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=EXIT_REFUSED)


def _given(**options: object) -> dict[str, object]:
    """The options given on the command line (None = not given)."""
    return {name: value for name, value in options.items() if value is not None}


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

    With no API key ever created and a loopback address, local callers are served open; on
    any other address the service refuses to start until an active key exists
    (``geo-router keys create``).
    """
    try:
        # Built here, not by the cached factories: the options win over the environment,
        # and a 1-worker server (this very process) reads the parts serve puts there.
        routing = load_settings(RoutingSettings, **_given(city=city))
        server = load_settings(ServerSettings, **_given(host=host, port=port, workers=workers))
        store = store_settings()
        if not routing.city.is_file():
            raise _fail(f"city profile {routing.city} does not exist (--city or GEO_ROUTER_CITY)")
        # refuse here, in one line, not in every worker
        secrets = Secrets.load(secrets_settings(), store)
        active, ever = count_keys(store, routing.city, secrets)
    except GeoRouterError as exc:
        raise _fail(exc.message) from None
    if active == 0 and not is_loopback_host(server.host):
        raise _fail(PUBLIC_WITHOUT_KEYS.format(host=server.host))
    url = base_url(server.host, server.port)
    typer.echo(f"geo-router serving {routing.city}")
    typer.echo(f"  API docs:  {url}/docs")
    typer.echo(f"  map page:  {url}/")
    if ever == 0:
        typer.secho(
            "  OPEN MODE: no API keys and bound to loopback; every local caller acts as admin.",
            fg=typer.colors.YELLOW,
        )
    elif active == 0:
        typer.secho(
            "  protected: every API key is revoked, so every protected endpoint answers 401; "
            "create one with 'geo-router keys create'",
            fg=typer.colors.YELLOW,
        )
    else:
        typer.echo(f"  protected: {active} active API key(s); send 'Authorization: Bearer KEY'")

    try:
        metrics_dir, temporary = metrics_folder(server)
    except OSError as exc:
        raise _fail(f"cannot prepare the metrics folder: {exc}") from None
    os.environ.update(worker_environment(routing, server, metrics_dir))
    raise_open_files_limit()
    try:
        supervise(uvicorn_config(server), server.worker_start_timeout_s)
    finally:
        if temporary and metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
