"""Service settings by concern, read from ``GEO_ROUTER_*`` environment variables (and ``.env``).

One class per concern, each with one cached factory that reads the environment once:

==================  =========================  =====================================================
class               factory                    knobs
==================  =========================  =====================================================
RoutingSettings     ``routing_settings()``     city profile, boundary tolerance, k, batch limit
StoreSettings       ``store_settings()``       data dir, database URL, outage journal, key cache
SecretsSettings     ``secrets_settings()``     production, pepper, encryption key, secrets file
IntakeSettings      ``intake_settings()``      rate limit per number, idempotency TTL, retention
ServerSettings      ``server_settings()``      host, port, workers, metrics dir, timeouts, proxies
ValidationSettings  ``validation_settings()``  layer gate: area, nesting, repair, upload limits
==================  =========================  =====================================================

Every consumer takes the part it needs (``Store.open(store)``, ``Secrets.load(secrets, store)``).
The web layer adds its own (``api/settings.py``). A bad value raises ``ConfigurationError``
naming the variable, in one line.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from platformdirs import user_data_path
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from geo_router.errors import ConfigurationError
from zones_data import DEMO_CITY_PROFILE

if TYPE_CHECKING:
    from functools import _lru_cache_wrapper

__all__ = [
    "DEMO_CITY_PROFILE",
    "PUBLIC_WITHOUT_KEYS",
    "EnvironmentSettings",
    "IntakeSettings",
    "RoutingSettings",
    "SecretsSettings",
    "ServerSettings",
    "StoreSettings",
    "ValidationSettings",
    "cached_factory",
    "default_data_dir",
    "intake_settings",
    "invalid_settings_message",
    "is_loopback_host",
    "load_settings",
    "routing_settings",
    "secrets_settings",
    "server_settings",
    "store_settings",
    "validation_settings",
]

ENV_PREFIX = "GEO_ROUTER_"


def default_data_dir() -> Path:
    """The per-user data dir (``platformdirs``): one store whatever folder a command runs from."""
    return user_data_path("geo-router", appauthor=False)


class EnvironmentSettings(BaseSettings):
    """Base of every part: field ``name`` is ``GEO_ROUTER_<NAME>`` (environment or ``.env``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")


class RoutingSettings(EnvironmentSettings):
    """What the router serves and how it answers."""

    city: Path = Field(DEMO_CITY_PROFILE, description="City profile (TOML) to serve.")
    boundary_tolerance_m: float = Field(10.0, ge=0, le=1000)
    default_k: int = Field(3, ge=1, le=50)
    batch_limit: int = Field(10_000, ge=1)


class StoreSettings(EnvironmentSettings):
    """Where the database lives."""

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Embedded database and secrets; a per-user folder unless set.",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; unset means SQLite in data_dir (embedded default)."
    )
    journal_path: Path | None = Field(
        None,
        description="Local journal of emergencies taken while the database is unavailable; "
        "journal.bin in data_dir unless set. Keep it on a local disk.",
    )
    journal_preallocate_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        description="Disk space reserved for the journal up front, so a full disk cannot "
        "stop it (about 2,000 emergency reports per 8 MiB).",
    )
    journal_replay_interval_s: float = Field(
        2.0, gt=0, le=3600, description="How often the journal is replayed into the store."
    )
    key_cache_ttl_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="How long a verified API key is trusted without asking the database; "
        "a key revoked by another process stops working within this time.",
    )

    @property
    def sqlite_path(self) -> Path:
        """Where the embedded SQLite database lives."""
        return self.data_dir / "geo_router.sqlite3"

    @property
    def effective_journal_path(self) -> Path:
        """The configured journal file, or ``journal.bin`` in the data dir."""
        return self.journal_path or self.data_dir / "journal.bin"

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def external(self) -> bool:
        """Whether the database is a server (not a SQLite file on this host)."""
        url = self.database_url
        return bool(url and not url.startswith("sqlite"))


class SecretsSettings(EnvironmentSettings):
    """The pepper and encryption key, or where to find them."""

    production: bool = Field(
        False, description="Refuse to start without configured secrets (no generated files)."
    )
    pepper: str | None = Field(None, description="HMAC pepper for phone lookups (secret).")
    encryption_key: str | None = Field(None, description="Fernet key for phones/addresses.")
    secrets_file: Path | None = Field(None, description="File holding pepper + encryption key.")


class IntakeSettings(EnvironmentSettings):
    """Limits of report intake."""

    rate_limit_per_hour: int = Field(20, ge=1, description="Non-emergency reports per number.")
    idempotency_ttl_hours: float = Field(
        24.0, gt=0, le=24 * 90, description="How long an Idempotency-Key replays its answer."
    )
    report_retention_days: int = Field(
        365,
        ge=0,
        le=36_500,
        description="Days after its last change when a report's personal fields (reporter "
        "number, home point, description, media, notes) are erased by 'geo-router reports "
        "purge'; 0 keeps them forever.",
    )


class ServerSettings(EnvironmentSettings):
    """The server processes ``geo-router serve`` starts: address, count, shared metrics."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    metrics_dir: Path | None = Field(
        None,
        description="Folder of the worker processes' metric files with --workers > 1 "
        "(PROMETHEUS_MULTIPROC_DIR); geo-router serve makes a temporary one when unset.",
    )
    header_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Time a connection has to send a request's headers."
    )
    keep_alive_s: int = Field(
        5, ge=1, le=300, description="How long an idle keep-alive connection stays open."
    )
    max_connections_per_client: int = Field(
        64,
        ge=1,
        description="Open connections per client address (trusted proxies are not capped).",
    )
    backlog: int = Field(
        4096,
        ge=64,
        le=65535,
        description="Connections the kernel holds for a busy worker before it refuses new "
        "ones (capped by net.core.somaxconn); a deep backlog keeps an emergency's connection "
        "from being refused while the worker sheds lower classes.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or networks of load balancers whose "
        "X-Forwarded-For names the client; none by default.",
    )
    worker_start_timeout_s: float = Field(
        120.0, gt=0, description="How long a restarting worker may take to load its city."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(entry, strict=False)  # a ValueError names the entry
        return value


_Part = TypeVar("_Part", bound=BaseSettings)


class ValidationSettings(EnvironmentSettings):
    """Tolerances of the zone layer validation gate (``geo_router.city.validation``)."""

    validation_min_area_m2: float = Field(
        1.0, ge=0, description="Overlaps, gaps and nesting leftovers above this are errors."
    )
    validation_nesting_share: float = Field(
        0.999, gt=0, le=1, description="Share of a child zone's area that must lie in one parent."
    )
    validation_max_repair_change: float = Field(
        0.001, ge=0, description="Largest relative area change a geometry repair may make."
    )
    layer_upload_max_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest layer file a planner may upload."
    )
    layer_upload_max_vertices: int = Field(
        2_000_000, ge=1, description="Most vertices an uploaded layer may have."
    )


def invalid_settings_message(exc: ValidationError) -> str:
    """One line naming each bad ``GEO_ROUTER_*`` variable (never its value: it may be secret)."""
    problems = []
    for error in exc.errors():
        name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
        problems.append(f"{name}: {error['msg']}")
    return "invalid setting " + "; ".join(problems)


def load_settings(part: type[_Part], **values: object) -> _Part:
    """``part`` from the environment, ``values`` first; a bad value is a ``ConfigurationError``."""
    # Any: BaseSettings takes the fields and its own options (``_env_file``) as keywords.
    keywords: dict[str, Any] = values
    try:
        return part(**keywords)
    except ValidationError as exc:
        raise ConfigurationError(invalid_settings_message(exc)) from None


def cached_factory(part: type[_Part]) -> _lru_cache_wrapper[_Part]:
    """The one factory of ``part``: reads the environment on its first call, then reuses it.

    ``factory.cache_clear()`` forgets it (tests that change the environment do).
    """

    @lru_cache(maxsize=1)
    def factory() -> _Part:
        return load_settings(part)

    factory.__doc__ = f"{part.__name__} from the environment, read once."
    return factory


routing_settings = cached_factory(RoutingSettings)
store_settings = cached_factory(StoreSettings)
secrets_settings = cached_factory(SecretsSettings)
intake_settings = cached_factory(IntakeSettings)
server_settings = cached_factory(ServerSettings)
validation_settings = cached_factory(ValidationSettings)


#: Why a server bound to a non-loopback address refuses to start without an active API key
#: (``geo-router serve`` and the uvicorn factory ``api.main:create_app_from_env`` alike).
PUBLIC_WITHOUT_KEYS = (
    "refusing to serve on {host} without API keys: anyone could use it. "
    "Create one with 'geo-router keys create --role admin --name ops', "
    "or bind to 127.0.0.1."
)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host.strip().lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
