"""``geo-router secrets init`` and ``rotate``: make and change the pepper and encryption key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from cryptography.fernet import Fernet

from geo_router.cli.app import app
from geo_router.errors import ConfigurationError, GeoRouterError
from geo_router.intake.secrets import (
    SECRETS_FILENAME,
    Secrets,
    keep_previous_secrets_file,
    write_new_secrets_file,
    write_secrets_file,
)
from geo_router.settings import secrets_settings, store_settings

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


def _rotation_target(file: Path | None, old: Secrets) -> Path:
    """Where the new secrets go: ``--file``, else the file the current ones came from."""
    if file is None:
        if old.file is None:
            raise ConfigurationError(
                "the secrets come from the environment: name the file to write the new ones "
                "to with --file (then point GEO_ROUTER_SECRETS_FILE at it)"
            )
        return old.file
    target = file.expanduser().resolve()
    if target.exists() and (old.file is None or target != old.file.resolve()):
        raise ConfigurationError(
            f"{target} exists and does not hold the current secrets: it is never overwritten"
        )
    return target


@secrets_app.command("rotate")
def rotate(
    pepper: Annotated[
        bool, typer.Option("--pepper", help="Also a new pepper (phone hashes are recomputed).")
    ] = False,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Where to write the new secrets; default their current file."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Even if a server seems to hold the store.")
    ] = False,
) -> None:
    """New encryption key (and pepper with --pepper): re-encrypt every encrypted value.

    One transaction re-encrypts the store and records the new check values; the new secrets
    are written (mode 0600) before it commits, and the previous file is kept beside as
    <file>.previous-<time>. Stop the servers first (refused while one holds the store).
    """
    from geo_router.store.database import Store, describe_store
    from geo_router.store.rotation import rotate_store
    from geo_router.store.secrets_check import check_for_service
    from geo_router.store.serving_lock import exclusive_store

    try:
        store_part = store_settings()
        old = Secrets.load(secrets_settings(), store_part)
        target = _rotation_target(file, old)
        typer.echo(f"store: {describe_store(store_part)}", err=True)
        with Store.open(store_part) as store, exclusive_store(store.engine, force=force):
            claim = check_for_service(store.engine, old)
            new = Secrets(
                Secrets.generate().pepper if pepper else old.pepper,
                Fernet.generate_key().decode("ascii"),
                source=f"secrets file {target}",
                file=target,
                bound_store=claim.store_id,
            )
            pending = target.with_name(target.name + ".next")
            counts = rotate_store(
                store.engine,
                old,
                new,
                before_commit=lambda: write_secrets_file(pending, new, replace=True),
            )
        kept = keep_previous_secrets_file(target) if target.exists() else None
        os.replace(pending, target)
    except GeoRouterError as exc:
        typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    except OSError as exc:
        typer.secho(f"error: {exc.filename}: {exc.strerror}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    total = sum(counts.values())
    what = "encryption key and pepper" if pepper else "encryption key"
    typer.echo(f"rotated the {what}: re-encrypted {total} value(s) in one transaction")
    typer.echo(f"new secrets in {target} (mode 0600)")
    if kept is not None:
        typer.echo(f"previous secrets kept in {kept} (delete it once backups made with it expire)")
    if old.file is None or target != old.file:
        typer.echo(f"serve with: export GEO_ROUTER_SECRETS_FILE={target}")
    typer.echo("restart the servers: they hold the old secrets in memory")
