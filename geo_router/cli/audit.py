"""geo-router audit: verify the hash chain, show its tail, export it, replay the journal.

Audit records the log could not take wait in the local journal (kind ``"audit"``); the
service's replay loop chains them when the database is back, and ``audit replay`` does it
now (only those records: the journal's other kinds stay pending for the service).
``verify`` only reads: it does not replay first.
"""

from __future__ import annotations

import sys

import orjson
import typer

from geo_router.cli.app import app
from geo_router.errors import GeoRouterError
from geo_router.intake.audit import AUDIT_KIND, AuditService
from geo_router.intake.secrets import secrets_for_migration
from geo_router.journal import Journal
from geo_router.settings import StoreSettings, secrets_settings, store_settings
from geo_router.store import Store, describe_store
from geo_router.store.audit_repo import StoredAuditRecord

audit_app = typer.Typer(
    help="The audit trail: verify its hash chain, tail, export, replay journaled records.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


def _open() -> tuple[Store, AuditService]:
    """The configured store and its audit service; says which store on stderr."""
    settings = store_settings()
    typer.echo(f"store: {describe_store(settings)}", err=True)
    store = Store.open(settings)
    return store, AuditService.for_store(store)


def open_journal(settings: StoreSettings) -> Journal | None:
    """The local journal, when the secrets that encrypt it are available and it opens; else
    None (says why on stderr when it cannot be opened)."""
    secrets = secrets_for_migration(secrets_settings(), settings)
    if secrets is None:
        return None
    try:
        return Journal.open(settings, secrets)
    except GeoRouterError as exc:
        typer.echo(f"warning: {exc.message}", err=True)
        return None


def _line(stored: StoredAuditRecord) -> dict[str, object]:
    return {"seq": stored.seq, **stored.record.to_dict(), "hash": stored.hash}


@audit_app.command("verify")
def verify() -> None:
    """Check every record is present, in order and unchanged (exit 1 naming the first bad one)."""
    try:
        store, audit = _open()
        with store:
            check = audit.verify()
    except GeoRouterError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None
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
    """Chain the audit records journaled while the audit log could not be written.

    Exit 2 when the log still cannot take them (they stay in the journal), 1 when another
    process (the service's replay loop) is replaying the journal right now.
    """
    settings = store_settings()
    if not settings.effective_journal_path.exists():
        typer.echo("chained 0 journaled audit records (no journal)")
        return
    journal = open_journal(settings)
    if journal is None:
        typer.echo("error: the journal cannot be read without the service's secrets", err=True)
        raise typer.Exit(code=2)
    try:
        typer.echo(f"store: {describe_store(settings)}", err=True)
        with Store.open(settings) as store:
            AuditService.for_store(store, journal=journal)  # registers the "audit" replayer
            result = journal.replay(kinds=(AUDIT_KIND,))
    except GeoRouterError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None
    finally:
        journal.close()
    if result.busy:
        typer.echo("the journal is being replayed by another process; try again", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"chained {result.replayed} journaled audit records")
    if result.store_unavailable or result.failed:
        typer.echo(
            f"error: the audit log did not take every record ({result.remaining} journaled "
            "records wait)",
            err=True,
        )
        raise typer.Exit(code=2)
