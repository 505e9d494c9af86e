"""geo-router keys: create, list and revoke API keys (creation and revocation are audited)."""

from __future__ import annotations

import getpass
from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table

from geo_router.cli.app import app
from geo_router.cli.audit import open_journal
from geo_router.errors import GeoRouterError
from geo_router.intake.audit import AuditService
from geo_router.intake.reports.models import ServiceActor
from geo_router.intake.secrets import secrets_for_migration
from geo_router.settings import secrets_settings, store_settings
from geo_router.store import CHANNELS, ROLES, ApiKeyRecord, Store, describe_store

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

_out = Console()
_err = Console(stderr=True)


def _open() -> Store:
    """The configured store, migrated (keys need their table); says which one on stderr.

    Keys name no city: a key is valid whatever city the store serves, so no city is
    recorded or checked here.
    """
    settings = store_settings()
    typer.echo(f"store: {describe_store(settings)}", err=True)
    return Store.open(settings, cipher=secrets_for_migration(secrets_settings(), settings))


def cli_actor() -> ServiceActor:
    """Who runs a command, for the audit trail: the operating-system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = "unknown"
    return ServiceActor(id="cli", name=f"cli:{user}")


def _audit_key(store: Store, action: str, record: ApiKeyRecord) -> None:
    """Audit a key's creation or revocation (journaled when the log cannot take it)."""
    journal = open_journal(store_settings())
    try:
        audit = AuditService.for_store(store, journal=journal)
        detail = {"role": record.role, "channel": record.channel, "prefix": record.prefix}
        audit.record(
            "key_create" if action == "create" else "key_revoke",
            "key_management",
            cli_actor(),
            [f"key:{record.id}"],
            detail,
            fail_closed=False,
        )
    finally:
        if journal is not None:
            journal.close()


def _fail(exc: GeoRouterError) -> typer.Exit:
    _err.print(f"[red]error:[/red] {exc.message}", highlight=False)
    return typer.Exit(code=1)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%MZ")


@keys_app.command("create")
def create(
    role: str = typer.Option(..., help=f"One of: {', '.join(ROLES)}."),
    name: str = typer.Option(..., help="Who uses the key, e.g. sms-gateway."),
    channel: str | None = typer.Option(None, help=f"Intake keys only: {', '.join(CHANNELS)}."),
) -> None:
    """Create a key and print it once: it is stored only as a hash."""
    try:
        with _open() as store:
            key, record = store.keys.create(role, name, channel=channel)
            _audit_key(store, "create", record)
    except GeoRouterError as exc:
        raise _fail(exc) from None
    _out.print(key, highlight=False, soft_wrap=True)
    _err.print(
        f"id {record.id}  prefix {record.prefix}  role {record.role}"
        f"{'  channel ' + record.channel if record.channel else ''}\n"
        "Store this key now: it cannot be shown again.",
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("list")
def list_keys() -> None:
    """List every key (never the keys themselves)."""
    try:
        with _open() as store:
            records = store.keys.list()
    except GeoRouterError as exc:
        raise _fail(exc) from None
    table = Table(show_edge=False)
    for column in ("id", "prefix", "name", "role", "channel", "created", "revoked"):
        table.add_column(column, overflow="fold")  # fold, never cut: ids must stay copyable
    for r in records:
        table.add_row(
            r.id,
            r.prefix,
            r.name,
            r.role,
            r.channel or "",
            _when(r.created_at),
            _when(r.revoked_at),
        )
    # Piped output (scripts, tests) is not squeezed into 80 columns.
    console = _out if _out.is_terminal else Console(width=200)
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id_or_prefix: str = typer.Argument(..., metavar="ID_OR_PREFIX"),
) -> None:
    """Revoke a key by id or by its 8-character prefix."""
    try:
        with _open() as store:
            record = store.keys.revoke(key_id_or_prefix)
            _audit_key(store, "revoke", record)
    except GeoRouterError as exc:
        raise _fail(exc) from None
    _out.print(
        f"revoked {record.id} ({record.prefix}, {record.name}) at {_when(record.revoked_at)}",
        highlight=False,
    )
