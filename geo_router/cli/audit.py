"""geo-router audit: verify the hash chain, show its tail, export it, replay the spool."""

from __future__ import annotations

import sys

import orjson
import typer

from geo_router.cli.app import app
from geo_router.errors import GeoRouterError
from geo_router.intake.audit import AuditService
from geo_router.settings import store_settings
from geo_router.store import Store, describe_store
from geo_router.store.audit_repo import StoredAuditRecord

audit_app = typer.Typer(
    help="The audit trail: verify its hash chain, tail, export, replay spooled records.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


def _open() -> tuple[Store, AuditService]:
    """The configured store and its audit service; says which store on stderr."""
    settings = store_settings()
    typer.echo(f"store: {describe_store(settings)}", err=True)
    store = Store.open(settings)
    return store, AuditService.for_store(store, settings.data_dir)


def _line(stored: StoredAuditRecord) -> dict[str, object]:
    return {"seq": stored.seq, **stored.record.to_dict(), "hash": stored.hash}


@audit_app.command("verify")
def verify() -> None:
    """Check every record is present, in order and unchanged (exit 1 naming the first bad one)."""
    try:
        store, audit = _open()
        with store:
            pending = audit.replay_pending()
            check = audit.verify()
    except GeoRouterError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None
    if pending:
        typer.echo(f"chained {pending} spooled records first", err=True)
    if not check.intact:
        typer.echo(
            f"audit log BROKEN at record {check.first_bad_seq}: {check.reason} "
            f"({check.count} records verified before it)"
        )
        raise typer.Exit(code=1)
    typer.echo(f"audit log intact: {check.count} records")


@audit_app.command("tail")
def tail(n: int = typer.Option(20, "-n", min=1, help="How many of the newest records.")) -> None:
    """The newest records, one JSON object per line."""
    try:
        store, audit = _open()
        with store:
            for stored in audit.tail(n):
                typer.echo(orjson.dumps(_line(stored)).decode())
    except GeoRouterError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None


@audit_app.command("export")
def export(
    after: int = typer.Option(0, min=0, help="Only records after this sequence number."),
) -> None:
    """Every record (with its hashes) as JSON lines on stdout, oldest first."""
    try:
        store, audit = _open()
        with store:
            for stored in audit.export(after):
                line = {**_line(stored), "prev_hash": stored.prev_hash}
                sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    except GeoRouterError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None


@audit_app.command("replay")
def replay() -> None:
    """Chain the records spooled while the database was unavailable."""
    try:
        store, audit = _open()
        with store:
            count = audit.replay_pending()
    except GeoRouterError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"chained {count} spooled records")
