"""geo_router: which zones hold a location, who responds, who is calling."""

from geo_router.errors import GeoRouterError

__version__ = "0.1.0"

__all__ = ["GeoRouterError", "__version__"]
