"""geo_router: which zones hold a location, who responds, who is calling."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from geo_router.errors import GeoRouterError

if TYPE_CHECKING:
    from geo_router.city import models
    from geo_router.city.profile import CityProfile, load_profile
    from geo_router.city.router import Router
    from geo_router.city.snapshot import CitySnapshot, build_snapshot

__version__ = "0.1.0"

__all__ = [
    "CityProfile",
    "CitySnapshot",
    "GeoRouterError",
    "Router",
    "__version__",
    "build_snapshot",
    "load_profile",
    "models",
]

# Loaded on first use: `import geo_router` stays cheap for the CLI and for submodule imports.
_LAZY = {
    "CityProfile": ("geo_router.city.profile", "CityProfile"),
    "load_profile": ("geo_router.city.profile", "load_profile"),
    "CitySnapshot": ("geo_router.city.snapshot", "CitySnapshot"),
    "Router": ("geo_router.city.router", "Router"),
    "build_snapshot": ("geo_router.city.snapshot", "build_snapshot"),
    "models": ("geo_router.city.models", None),
}


def __getattr__(name: str) -> Any:
    """Resolve the lazy exports (PEP 562)."""
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'geo_router' has no attribute {name!r}") from None
    module = import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
