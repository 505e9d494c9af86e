"""The web layer's settings, and the bundle the app is built from.

``ApiSettings`` holds the knobs only the HTTP API has (request size limit, map tiles);
``AppSettings`` bundles it with the library's parts (``geo_router.settings``), so the app,
its lifespan and its dependencies hand each consumer the one part it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from pydantic_settings.sources import ENV_FILE_SENTINEL, DotenvType

from geo_router.settings import (
    EnvironmentSettings,
    IntakeSettings,
    RoutingSettings,
    SecretsSettings,
    ServerSettings,
    StoreSettings,
    cached_factory,
    intake_settings,
    load_settings,
    routing_settings,
    secrets_settings,
    server_settings,
    store_settings,
)

__all__ = ["ApiSettings", "AppSettings", "api_settings"]


class ApiSettings(EnvironmentSettings):
    """What the HTTP API enforces and shows."""

    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    tile_url: str | None = Field(
        None, description="XYZ tile URL for the map page; none by default."
    )
    legacy_caller_path: bool = Field(
        False,
        description=(
            "Also serve the deprecated GET /v1/callers/{phone} for old clients (the number "
            "then sits in URLs and access logs); off by default: use POST /v1/callers/lookup."
        ),
    )

    admit_route: int = Field(
        64, ge=1, description="Non-emergency routing requests in flight before queueing."
    )
    admit_intake: int = Field(
        8, ge=1, description="Non-emergency intake requests in flight before queueing."
    )
    admit_other: int = Field(8, ge=1, description="Other requests in flight before queueing.")
    admit_queue_wait_ms: int = Field(
        1000, ge=0, le=60_000, description="How long a queued lower-class request may wait."
    )
    shed_lag_ms: int = Field(
        200,
        ge=1,
        le=60_000,
        description="Event-loop lag over which every non-emergency request is shed (503).",
    )
    shed_cpu_percent: int = Field(
        75,
        ge=10,
        le=1000,
        description="Worker CPU use plus time waiting for a CPU (percent of one CPU) over "
        "which a growing share of non-emergency requests is shed (over 100: only by "
        "event-loop lag).",
    )
    shed_connections: int = Field(
        96,
        ge=1,
        description="Open connections of a worker from which its CPU use counts as overload.",
    )
    retry_after_s: int = Field(1, ge=1, le=3600, description="Retry-After of a shed request.")


api_settings = cached_factory(ApiSettings)


#: The parts of ``AppSettings``, by field name.
_PARTS: dict[str, type[EnvironmentSettings]] = {
    "routing": RoutingSettings,
    "store": StoreSettings,
    "secrets": SecretsSettings,
    "intake": IntakeSettings,
    "server": ServerSettings,
    "api": ApiSettings,
}
#: The part that declares each setting name.
_OWNER = {name: part for part, model in _PARTS.items() for name in model.model_fields}


@dataclass(frozen=True, slots=True)
class AppSettings:
    """Every part the app is built from; each consumer is handed only its own."""

    routing: RoutingSettings
    store: StoreSettings
    secrets: SecretsSettings
    intake: IntakeSettings
    server: ServerSettings
    api: ApiSettings

    @classmethod
    def from_env(cls) -> AppSettings:
        """The parts from the environment (each read once per process)."""
        return cls(
            routing=routing_settings(),
            store=store_settings(),
            secrets=secrets_settings(),
            intake=intake_settings(),
            server=server_settings(),
            api=api_settings(),
        )

    @classmethod
    def of(
        cls, *, _env_file: DotenvType | None = ENV_FILE_SENTINEL, **named: object
    ) -> AppSettings:
        """Build every part, handing each named value to the part that declares it.

        ``AppSettings.of(data_dir=tmp, batch_limit=5)``: values not named come from the
        environment as usual; ``_env_file=None`` skips ``.env`` (as tests do).

        Raises
        ------
        TypeError
            A name no part declares.
        ConfigurationError
            A value a part refuses (the message names the ``GEO_ROUTER_*`` variable).
        """
        unknown = sorted(set(named) - set(_OWNER))
        if unknown:
            raise TypeError(f"unknown settings {unknown}; known: {sorted(_OWNER)}")
        values: dict[str, dict[str, object]] = {part: {} for part in _PARTS}
        for name, value in named.items():
            values[_OWNER[name]][name] = value
        parts = {
            part: load_settings(model, _env_file=_env_file, **values[part])
            for part, model in _PARTS.items()
        }
        return cls(**parts)  # type: ignore[arg-type]  # each part is its field's type (_PARTS)
