"""geo-router keys commands."""

from __future__ import annotations

from geo_router.cli.app import app  # noqa: F401
