"""``geo-router backup PATH`` and ``geo-router restore PATH``: the embedded store, safely.

Logic in ``geo_router.store.backup``; PostgreSQL stores use pg_dump / pg_restore (README).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geo_router.cli.app import app
from geo_router.errors import GeoRouterError
from geo_router.settings import StoreSettings, secrets_settings, store_settings

EXIT_ERROR = 2

#: What an operator of a PostgreSQL store runs instead (the URL masked).
PG_DUMP_HINT = (
    "this store is PostgreSQL ({store}): back it up with pg_dump and restore with pg_restore "
    "(store_meta, the secrets' check values, travels inside the dump):\n"
    "  pg_dump --format=custom --file=geo_router.dump DATABASE_URL\n"
    "  pg_restore --clean --if-exists --single-transaction --dbname=DATABASE_URL "
    "geo_router.dump\n"
    "stop the servers before pg_restore; they check the secrets against the restored store "
    "when they start"
)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=EXIT_ERROR)


def _refuse_postgres(settings: StoreSettings) -> None:
    from geo_router.store.database import describe_store

    typer.echo(f"store: {describe_store(settings)}", err=True)
    if settings.external:
        raise _fail(PG_DUMP_HINT.format(store=describe_store(settings)))


@app.command("backup")
def backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write (never overwritten).")],
) -> None:
    """Write a consistent copy of the embedded store (mode 0600) while it may be serving.

    The copy carries the store's id and its secrets' check values; the secrets file itself is
    not in it: keep it backed up separately.
    """
    from geo_router.store.backup import backup_sqlite
    from geo_router.store.database import Store

    try:
        settings = store_settings()
        _refuse_postgres(settings)
        with Store.open(settings) as store:
            info = backup_sqlite(store.engine, path.expanduser().resolve())
    except GeoRouterError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"backup written: {info.path} ({info.bytes} bytes, mode 0600)")
    if info.store_id is None:
        typer.secho(
            "  the store has no secrets check values yet (never started): a restore will "
            "verify the secrets by decrypting stored rows",
            fg=typer.colors.YELLOW,
        )
    else:
        typer.echo(f"  store {info.store_id}, with its secrets' check values")


@app.command("restore")
def restore(
    path: Annotated[Path, typer.Argument(help="A backup made by 'geo-router backup'.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Even if a server holds the store (it must not write)."),
    ] = False,
) -> None:
    """Replace the embedded store with a backup, atomically, once the secrets open it.

    Refused (nothing replaced) when the configured secrets do not match the backup, the
    backup is damaged, or a server holds the store (stop it, or --force). The replaced
    database is kept beside as <file>.pre-restore-<time>.
    """
    from geo_router.intake.secrets import SECRETS_FILENAME, Secrets
    from geo_router.store.backup import restore_sqlite
    from geo_router.store.engine import make_engine

    try:
        settings = store_settings()
        _refuse_postgres(settings)
        secrets_part = secrets_settings()
        configured = secrets_part.pepper or secrets_part.encryption_key or secrets_part.secrets_file
        default_file = settings.data_dir / SECRETS_FILENAME
        if not configured and not default_file.exists():
            # Secrets.load would make new ones, which can never open a backup.
            raise _fail(
                f"no secrets: put back the secrets file the backup was made with ({default_file}) "
                "or set GEO_ROUTER_SECRETS_FILE"
            )
        secrets = Secrets.load(secrets_part, settings)
        engine = make_engine(settings.effective_database_url)
        try:
            info = restore_sqlite(engine, path.expanduser().resolve(), secrets, force=force)
        finally:
            engine.dispose()
    except GeoRouterError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"restored store {info.store_id} from {path}")
    if info.previous is not None:
        typer.echo(f"  the replaced database is kept as {info.previous}")
