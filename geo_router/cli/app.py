"""The root ``geo-router`` Typer app; command modules register themselves on it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="geo-router",
    help="Zone routing for city service centers and emergency intake.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
