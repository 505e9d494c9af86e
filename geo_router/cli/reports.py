"""geo-router reports: bulk import of historic reports (a 311 export, CSV or CSV.gz).

Domain errors end the command with a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from geo_router.cli.app import app
from geo_router.errors import GeoRouterError, InputError
from geo_router.intake.secrets import secrets_for_migration
from geo_router.settings import (
    intake_settings,
    routing_settings,
    secrets_settings,
    store_settings,
)
from geo_router.store.schema import IMPORT_CHANNEL, REPORT_CHANNELS

reports_app = typer.Typer(
    help="Reports: import historic reports, erase personal fields past their retention.",
    no_args_is_help=True,
)
app.add_typer(reports_app, name="reports")

EXIT_ERROR = 2
_CHANNELS = ", ".join(REPORT_CHANNELS)


def _category_map(path: Path | None) -> dict[str, str] | None:
    """Source category -> profile code, from a JSON object file."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path.name}: cannot read the category map: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError(f"{path.name}: the category map must be a JSON object of strings")
    return {str(k): v for k, v in data.items()}


@reports_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV or CSV.gz.", exists=True, dir_okay=False)],
    lon_field: Annotated[str, typer.Option("--lon-field", help="Longitude column.")],
    lat_field: Annotated[str, typer.Option("--lat-field", help="Latitude column.")],
    category_field: Annotated[str, typer.Option("--category-field", help="Category column.")],
    created_field: Annotated[str, typer.Option("--created-field", help="Creation time column.")],
    channel: Annotated[
        str, typer.Option("--channel", help=f"Channel stored on every row: {_CHANNELS}.")
    ] = IMPORT_CHANNEL,
    city: Annotated[
        Path | None,
        typer.Option("--city", envvar="GEO_ROUTER_CITY", help="City profile (TOML)."),
    ] = None,
    category_map: Annotated[
        Path | None,
        typer.Option("--category-map", help="JSON object: source category -> profile code."),
    ] = None,
    description_field: Annotated[
        str | None, typer.Option("--description-field", help="Column kept as description.")
    ] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="IANA zone of timestamps without an offset.")
    ] = "UTC",
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1)] = 50_000,
) -> None:
    """Route every row in bulk and store it; prints the summary as JSON (with rows/s).

    Rows with unusable coordinates are stored with the flag invalid_coordinates (and
    counted); unknown categories are stored as they are, flagged unknown_category.
    """
    from geo_router.city.router import Router
    from geo_router.intake.reports.importer import import_reports
    from geo_router.intake.secrets import secrets_for_migration
    from geo_router.store.city_record import claim_city_profile
    from geo_router.store.database import Store, describe_store
    from geo_router.store.reports_repo import ReportsRepo

    try:
        routing, store_part = routing_settings(), store_settings()
        profile = city or routing.city
        router = Router.from_profile(profile, tolerance_m=routing.boundary_tolerance_m)
        typer.echo(f"store: {describe_store(store_part)}", err=True)
        store = Store.open(store_part, cipher=secrets_for_migration(secrets_settings(), store_part))
        try:
            # the store holds one city's reports: record this one, or refuse another
            note = claim_city_profile(store.engine, profile).note
            if note:
                typer.echo(f"info: {note}", err=True)
            summary = import_reports(
                file,
                router,
                ReportsRepo(store.engine),
                lon_field=lon_field,
                lat_field=lat_field,
                category_field=category_field,
                created_field=created_field,
                channel=channel,
                category_map=_category_map(category_map),
                chunk_size=chunk_size,
                description_field=description_field,
                timezone=timezone,
            )
        finally:
            store.close()
    except GeoRouterError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(json.dumps(summary.to_dict(), indent=2))


@reports_app.command("purge")
def purge_command(
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=0,
            help="Retention in days (default GEO_ROUTER_REPORT_RETENTION_DAYS, 365; 0 keeps all).",
        ),
    ] = None,
) -> None:
    """Erase the personal fields of reports last changed more than the retention ago.

    The reporter's number and its HMAC, a home point, the description, media link and
    history notes go; category, channel, zones, times and status stay for statistics.
    Idempotent: a second run erases nothing and prints zero counts (JSON).
    """
    from geo_router.intake.reports.retention import purge_expired_reports
    from geo_router.store.database import Store, describe_store
    from geo_router.store.reports_repo import ReportsRepo

    try:
        retention = intake_settings().report_retention_days if days is None else days
        store_part = store_settings()
        typer.echo(f"store: {describe_store(store_part)}", err=True)
        with Store.open(
            store_part, cipher=secrets_for_migration(secrets_settings(), store_part)
        ) as store:
            run = purge_expired_reports(ReportsRepo(store.engine), retention)
    except GeoRouterError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(json.dumps(run.to_dict(), indent=2))
