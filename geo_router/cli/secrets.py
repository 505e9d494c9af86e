"""``geo-router secrets init``: make the pepper and encryption key a deployment needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geo_router.cli.app import app
from geo_router.errors import GeoRouterError
from geo_router.intake.secrets import SECRETS_FILENAME, write_new_secrets_file
from geo_router.settings import store_settings

secrets_app = typer.Typer(help="The secrets that protect phone numbers and addresses.")
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("init")
def init(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Where to write them; default the data dir's secrets.json."),
    ] = None,
) -> None:
    """Write a new pepper and Fernet key to a file (mode 0600) and print the setting to use.

    An existing file is never overwritten: data encrypted with it could not be read again.
    """
    try:
        path = (file or store_settings().data_dir / SECRETS_FILENAME).expanduser().resolve()
    except GeoRouterError as exc:
        typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    try:
        write_new_secrets_file(path)
    except FileExistsError:
        typer.secho(
            f"error: {path} exists; it is never overwritten (data encrypted with it could not be "
            "read again). Name another file with --file.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=2) from None
    except OSError as exc:
        typer.secho(f"error: cannot write {path}: {exc.strerror}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"wrote a new pepper and encryption key to {path} (mode 0600)")
    typer.echo("serve with:")
    typer.echo(f"  export GEO_ROUTER_SECRETS_FILE={path}")
    typer.echo(
        "Back this file up and keep it out of the database's backups: without it, stored phone "
        "numbers and addresses cannot be read; with it, anyone holding the database can."
    )
