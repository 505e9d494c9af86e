"""geo-router subscribers: erase a subscriber on request (personal data protection).

The phone number is read from a hidden prompt (or stdin), never from the command line, so
it does not end up in shell history or the process list.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from geo_router.cli.app import app
from geo_router.errors import GeoRouterError

if TYPE_CHECKING:
    from geo_router.city.router import Router

subscribers_app = typer.Typer(
    help="The caller registry: erase a subscriber on request.", no_args_is_help=True
)
app.add_typer(subscribers_app, name="subscribers")

EXIT_ERROR = 2


@subscribers_app.command("erase")
def erase_command(
    subscriber_id: Annotated[
        str | None,
        typer.Option("--id", help="The subscriber's id; without it the number is asked for."),
    ] = None,
    region: Annotated[
        str, typer.Option("--region", help="Region of numbers without a country code.")
    ] = "ID",
) -> None:
    """Erase a subscriber with everything that names them (PDP Law 2022, GDPR).

    The subscriber row and its sealed fields go; the reports from their number lose the
    number, its HMAC, the home point, description, media and notes, and stay for statistics
    by zone. By number (asked for when --id is not given), the reports of a number that is
    not registered are erased too. Prints what was erased (JSON); running it again erases
    nothing more.
    """
    from geo_router.intake.secrets import Secrets
    from geo_router.intake.subscribers.service import SubscriberService
    from geo_router.settings import secrets_settings, store_settings
    from geo_router.store.database import Store, describe_store
    from geo_router.store.reports_repo import ReportsRepo
    from geo_router.store.subscribers_repo import SubscribersRepo

    phone = None
    if subscriber_id is None:
        phone = typer.prompt("Phone number to erase", hide_input=True)
    try:
        store_part = store_settings()
        secrets = Secrets.load(secrets_settings(), store_part)
        typer.echo(f"store: {describe_store(store_part)}", err=True)
        with Store.open(store_part, cipher=secrets) as store:
            registry = SubscriberService(
                SubscribersRepo(store.engine),
                ReportsRepo(store.engine),
                secrets,
                _no_router,
                region=region,
            )
            erased = registry.erase(subscriber_id=subscriber_id, phone=phone)
    except GeoRouterError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    summary = {
        "subscriber_id": erased.subscriber_id,
        "reports_erased": erased.reports.reports,
        "idempotency_keys_deleted": erased.reports.idempotency_keys,
    }
    typer.echo(json.dumps(summary, indent=2))


def _no_router() -> Router:
    """Erasing routes nothing: no city is loaded."""
    raise RuntimeError("erasing a subscriber needs no router")
