"""The router intake services route with: the current one, fetched when needed.

A served city's ``Router`` may be swapped (new boundaries) and may still be loading when a
request that needs no routing arrives, so services take either a ``Router`` or a
zero-argument callable returning the current one, and call it only when they route.
"""

from __future__ import annotations

from collections.abc import Callable

from geo_router.city.router import Router

__all__ = ["RouterSource", "router_getter"]

#: The current ``Router``, or a zero-argument callable returning it.
RouterSource = Router | Callable[[], Router]


def router_getter(source: RouterSource) -> Callable[[], Router]:
    """A callable returning the current router (``source`` itself when it is one)."""
    if callable(source):
        return source
    return lambda: source
