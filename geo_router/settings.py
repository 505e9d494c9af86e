"""Service settings, read from ``GEO_ROUTER_*`` environment variables (and ``.env``)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_path
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from zones_data import DEMO_CITY_PROFILE

__all__ = ["DEMO_CITY_PROFILE", "Settings", "default_data_dir", "get_settings", "is_loopback_host"]


def default_data_dir() -> Path:
    """The per-user data dir (``platformdirs``): one store whatever folder a command runs from."""
    return user_data_path("geo-router", appauthor=False)


class Settings(BaseSettings):
    """Every knob of the service; each field is ``GEO_ROUTER_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GEO_ROUTER_", env_file=".env", extra="ignore")

    city: Path = Field(DEMO_CITY_PROFILE, description="City profile (TOML) to serve.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Embedded database and secrets; a per-user folder unless set.",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; unset means SQLite in data_dir (embedded default)."
    )
    production: bool = Field(
        False, description="Refuse to start without configured secrets (no generated files)."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    boundary_tolerance_m: float = Field(10.0, ge=0, le=1000)
    default_k: int = Field(3, ge=1, le=50)
    batch_limit: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    tile_url: str | None = Field(
        None, description="XYZ tile URL for the map page; none by default."
    )
    pepper: str | None = Field(None, description="HMAC pepper for phone lookups (secret).")
    encryption_key: str | None = Field(None, description="Fernet key for phones/addresses.")
    secrets_file: Path | None = Field(None, description="File holding pepper + encryption key.")
    rate_limit_per_hour: int = Field(20, ge=1, description="Non-emergency reports per number.")
    metrics_dir: Path | None = Field(
        None,
        description="Folder of the worker processes' metric files with --workers > 1 "
        "(PROMETHEUS_MULTIPROC_DIR); geo-router serve makes a temporary one when unset.",
    )
    idempotency_ttl_hours: float = Field(
        24.0, gt=0, le=24 * 90, description="How long an Idempotency-Key replays its answer."
    )

    @property
    def sqlite_path(self) -> Path:
        """Where the embedded SQLite database lives."""
        return self.data_dir / "geo_router.sqlite3"

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.sqlite_path}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once (tests build their own ``Settings``)."""
    return Settings()


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host.strip().lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
