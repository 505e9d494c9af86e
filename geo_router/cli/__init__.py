"""The ``geo-router`` command line: one module per command group."""

from __future__ import annotations

from geo_router.cli import (  # noqa: F401  (register commands)
    audit,
    backup,
    db,
    keys,
    layers,
    reports,
    routing,
    secrets,
    serve,
    subscribers,
)
from geo_router.cli.app import app


def main() -> None:
    """Entry point of the ``geo-router`` console script."""
    app()


__all__ = ["app", "main"]
