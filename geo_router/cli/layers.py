"""geo-router layers: upload a new version of a zone layer, list a layer's versions, show one.

The store and city are the configured ones (``GEO_ROUTER_DATABASE_URL`` / data dir,
``GEO_ROUTER_CITY`` or ``--city``). Before an upload the profile's files are stored as
versions if they are not yet (what the service does at start), so the gate checks the new
version against the layers in force. Uploads are audited like the API's.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from geo_router.city.profile import load_profile
from geo_router.cli.app import app
from geo_router.cli.audit import open_journal
from geo_router.cli.keys import cli_actor
from geo_router.errors import GeoRouterError
from geo_router.intake.audit import AuditService
from geo_router.intake.secrets import secrets_for_migration
from geo_router.planning.seeding import seed_from_profile
from geo_router.planning.versions import LayerVersions
from geo_router.settings import routing_settings, secrets_settings, store_settings
from geo_router.store import Store, describe_store
from geo_router.store.layer_versions_repo import LayerVersionsRepo

layers_app = typer.Typer(
    help="Versions of the zone layers: upload (validated, staged), list, show.",
    no_args_is_help=True,
)
app.add_typer(layers_app, name="layers")

_out = Console()
_err = Console(stderr=True)

CITY_OPTION = typer.Option(None, "--city", help="City profile (default: GEO_ROUTER_CITY).")


def _open(city: Path | None) -> tuple[Store, LayerVersions]:
    """The configured store (migrated) and the city's layer versions in it."""
    settings = store_settings()
    _err.print(f"store: {describe_store(settings)}", highlight=False)
    store = Store.open(settings, cipher=secrets_for_migration(secrets_settings(), settings))
    profile = load_profile(city or routing_settings().city)
    return store, LayerVersions(LayerVersionsRepo(store.engine), profile)


def _fail(exc: GeoRouterError) -> typer.Exit:
    _err.print(f"[red]error:[/red] {exc.message}", highlight=False)
    return typer.Exit(code=2)


def _print_json(data: object) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@layers_app.command("upload")
def upload(
    layer: str = typer.Argument(..., help="The layer's name in the city profile."),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The layer file."),
    note: str | None = typer.Option(None, "--note", help="Why this version."),
    city: Path | None = CITY_OPTION,
) -> None:
    """Store FILE as a new version of LAYER through the validation gate (never activated).

    Prints the version with its report. Exit 0 when staged (errors are listed in the
    report: a version with errors cannot be activated), 1 when the file could not be read
    (stored as failed), 2 when refused (size, format, vertices, unknown layer).
    """
    try:
        store, versions = _open(city)
        with store:
            seed_from_profile(versions)
            journal = open_journal(store_settings())
            try:
                versions.audit = AuditService.for_store(store, journal=journal)
                row = versions.upload(layer, file.read_bytes(), file.name, note, cli_actor())
            finally:
                if journal is not None:
                    journal.close()
    except GeoRouterError as exc:
        raise _fail(exc) from None
    _print_json(row.to_dict(report=True))
    blocking = bool((row.report or {}).get("blocking"))
    _err.print(
        f"{layer} version {row.number} ({row.id}): {row.state}"
        + (" with errors: it cannot be activated" if blocking else ""),
        highlight=False,
    )
    if row.state == "failed":
        raise typer.Exit(code=1)


@layers_app.command("list")
def list_versions(
    layer: str = typer.Argument(..., help="The layer's name in the city profile."),
    city: Path | None = CITY_OPTION,
) -> None:
    """LAYER's versions, newest first: number, id, state, author, created, note."""
    try:
        store, versions = _open(city)
        with store:
            rows = versions.list_versions(layer)
    except GeoRouterError as exc:
        raise _fail(exc) from None
    table = Table("number")
    table.add_column("id", no_wrap=True, min_width=15)  # what `layers show` takes: never cut
    for column in ("state", "features", "author", "created", "note"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.number),
            row.id,
            row.state,
            "" if row.feature_count is None else str(row.feature_count),
            row.author,
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.note or "",
        )
    _out.print(table)


@layers_app.command("show")
def show(
    version_id: str = typer.Argument(..., metavar="ID", help="The id an upload answered."),
    city: Path | None = CITY_OPTION,
) -> None:
    """The version ID as JSON: state, checksum, author, note and its validation report."""
    try:
        store, versions = _open(city)
        with store:
            row = versions.get_version(version_id)
    except GeoRouterError as exc:
        raise _fail(exc) from None
    _print_json(row.to_dict(report=True))
