"""geo-router db: database migrations."""

from __future__ import annotations

import typer
from rich.console import Console

from geo_router.cli.app import app
from geo_router.errors import GeoRouterError
from geo_router.intake.secrets import secrets_for_migration
from geo_router.settings import secrets_settings, store_settings
from geo_router.store.database import current_revision, describe_store, make_engine, upgrade

db_app = typer.Typer(help="Database: migrations, secrets check.", no_args_is_help=True)
app.add_typer(db_app, name="db")

_err = Console(stderr=True)


@db_app.command("upgrade")
def upgrade_command(
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Apply migrations to GEO_ROUTER_DATABASE_URL (or the embedded SQLite in the data dir)."""
    try:
        settings = store_settings()
        typer.echo(f"store: {describe_store(settings)}", err=True)
        engine = make_engine(settings.effective_database_url)
        try:
            upgrade(engine, revision, cipher=secrets_for_migration(secrets_settings(), settings))
            reached = current_revision(engine)
        finally:
            engine.dispose()
    except GeoRouterError as exc:
        _err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    backend = engine.url.get_backend_name()
    typer.echo(f"database ({backend}) at revision {reached}")


@db_app.command("init")
def init_command(
    new: bool = typer.Option(
        False,
        "--new",
        help="Accept an empty store although the secrets belong to another (deleted) store, "
        "and bind them to this one.",
    ),
) -> None:
    """Migrate the store, check the secrets against it and bind them to it.

    Start and 'secrets rotate' do the same check; an empty store whose secrets file names
    another store (the database that held data was deleted or replaced) is refused unless
    --new says that starting afresh is intended.
    """
    from geo_router.intake.secrets import Secrets
    from geo_router.store.database import Store
    from geo_router.store.secrets_check import check_for_service

    try:
        settings = store_settings()
        typer.echo(f"store: {describe_store(settings)}", err=True)
        secrets = Secrets.load(secrets_settings(), settings)
        with Store.open(settings, cipher=secrets) as store:
            claim = check_for_service(store.engine, secrets, allow_new=new)
    except GeoRouterError as exc:
        _err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    typer.echo(f"store {claim.store_id}: secrets {claim.status}")
    if secrets.bound_store == claim.store_id and secrets.file is not None:
        typer.echo(f"the secrets file {secrets.file} is bound to this store")
