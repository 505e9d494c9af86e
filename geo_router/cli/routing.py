"""geo-router routing commands: ``route`` one point, ``route-file`` a whole file, ``validate``.

Domain errors (:class:`~geo_router.errors.GeoRouterError`) end a command with a one-line
message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from geo_router.cli.app import app
from geo_router.encoding.json import dumps, route_result_dict
from geo_router.errors import GeoRouterError, InputError
from geo_router.settings import DEMO_CITY_PROFILE, routing_settings

if TYPE_CHECKING:
    from geo_router.city.router import Router

#: Exit codes: 1 = a layer the validation gate refuses, 2 = unusable input or configuration.
EXIT_REFUSED = 1
EXIT_ERROR = 2

CityOption = Annotated[
    Path,
    typer.Option(
        "--city",
        envvar="GEO_ROUTER_CITY",
        help="City profile (TOML); the bundled demo city by default.",
        show_default=False,
    ),
]
ToleranceOption = Annotated[
    float | None,
    typer.Option(
        "--tolerance-m",
        min=0,
        help="Boundary tolerance in metres (default: GEO_ROUTER_BOUNDARY_TOLERANCE_M or 10).",
    ),
]


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn GeoRouterError into a one-line message and exit code 2."""
    try:
        yield
    except GeoRouterError as exc:
        raise fail(exc.message) from None


def _tolerance(tolerance_m: float | None) -> float:
    """The boundary tolerance: the option, else the setting."""
    if tolerance_m is not None:
        return tolerance_m
    return routing_settings().boundary_tolerance_m


def load_router(city: Path, tolerance_m: float | None = None) -> Router:
    """Build the router for a city profile (domain errors propagate)."""
    from geo_router.city.router import Router

    if not city.is_file():
        raise InputError(f"{city}: city profile not found")
    return Router.from_profile(city, tolerance_m=_tolerance(tolerance_m))


def _point_from_options(
    lon: float | None,
    lat: float | None,
    x: float | None,
    y: float | None,
    crs: str | None,
) -> tuple[float, float]:
    """The (lon, lat) to route: given directly, or x/y transformed from ``crs``."""
    projected = x is not None or y is not None
    if projected and (lon is not None or lat is not None):
        raise InputError("give either --lon/--lat or --x/--y with --crs, not both")
    if projected:
        if x is None or y is None or crs is None:
            raise InputError("--x and --y need each other and --crs (e.g. --crs EPSG:32748)")
        from geo_router.city.coords import to_lonlat

        lons, lats = to_lonlat([x], [y], crs)
        return float(lons[0]), float(lats[0])
    if lon is None or lat is None:
        raise InputError("give --lon and --lat (or --x, --y and --crs)")
    if crs is not None:
        raise InputError("--crs applies to --x/--y; --lon/--lat are always EPSG:4326")
    return lon, lat


@app.command("route")
def route_command(
    city: CityOption = DEMO_CITY_PROFILE,
    lon: Annotated[float | None, typer.Option(help="Longitude (EPSG:4326).")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude (EPSG:4326).")] = None,
    x: Annotated[float | None, typer.Option(help="Easting in --crs.")] = None,
    y: Annotated[float | None, typer.Option(help="Northing in --crs.")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of --x/--y, e.g. EPSG:32748.")] = None,
    category: Annotated[str | None, typer.Option(help="Report category code.")] = None,
    k: Annotated[int, typer.Option(min=1, max=50, help="Responders per type.")] = 3,
    tolerance_m: ToleranceOption = None,
) -> None:
    """Route one location: zones in every layer, nearest responders, the category's agency."""
    with domain_errors():
        from geo_router.city.coords import require_lonlat

        point_lon, point_lat = require_lonlat(*_point_from_options(lon, lat, x, y, crs))
        router = load_router(city, tolerance_m)
        result = router.route(point_lon, point_lat, category=category, k=k)
    typer.echo(dumps(route_result_dict(result), indent=True))


@app.command("route-file")
def route_file_command(
    input_path: Annotated[
        Path, typer.Argument(help="CSV (.csv, .csv.gz), GeoJSON, GPKG or Parquet.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output file; format by extension.")
    ],
    city: CityOption = DEMO_CITY_PROFILE,
    lon_field: Annotated[str | None, typer.Option(help="Longitude column.")] = None,
    lat_field: Annotated[str | None, typer.Option(help="Latitude column.")] = None,
    x_field: Annotated[str | None, typer.Option(help="Projected x column (needs --crs).")] = None,
    y_field: Annotated[str | None, typer.Option(help="Projected y column (needs --crs).")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of the x/y columns.")] = None,
    k: Annotated[int, typer.Option(min=1, max=50, help="Nearest facilities per type.")] = 1,
    chunk_size: Annotated[int, typer.Option(min=1, help="Rows routed at a time.")] = 200_000,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    ] = None,
    tolerance_m: ToleranceOption = None,
) -> None:
    """Route every row of a file; write it with zone ids, candidates, status and responders."""
    from geo_router.batch.routefile import route_file

    with domain_errors():
        router = load_router(city, tolerance_m)
        summary = route_file(
            input_path,
            output,
            router,
            lon_field=lon_field,
            lat_field=lat_field,
            x_field=x_field,
            y_field=y_field,
            crs=crs,
            k=k,
            chunk_size=chunk_size,
            progress=progress,
        )
    typer.echo(f"coordinates from {summary.coordinates}", err=True)
    typer.echo(
        f"routed {summary.rows} rows ({summary.valid} valid, {summary.invalid} invalid) "
        f"in {summary.seconds:.2f} s, {summary.rows_per_s:,.0f} rows/s -> {output}"
    )


def _read_layer(path: Path) -> Any:
    """Read a zone layer file (any OGR format, or GeoParquet) as a GeoDataFrame in EPSG:4326."""
    import geopandas as gpd

    if not path.is_file():
        raise InputError(f"{path}: layer file not found")
    try:
        if path.suffix.lower() in {".parquet", ".geoparquet"}:
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio/arrow raise many kinds; one clear line either way
        raise InputError(f"{path}: cannot read the layer: {exc}") from exc
    # the gate works in lon/lat (areas come from a local UTM); a layer without CRS is taken as such
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs(4326)
    return gdf


def _report_text(report: Any) -> str:
    """The report as text (its own rendering when it has one)."""
    to_text: Callable[[], str] | None = getattr(report, "to_text", None)
    if to_text is not None:
        return to_text()
    return dumps(report.to_dict(), indent=True).decode()


def _read_boundary(path: Path) -> Any:
    """The union of a boundary file's polygons (EPSG:4326)."""
    import shapely

    from geo_router.city.validation import geometry_array

    return shapely.union_all(geometry_array(_read_layer(path)))


def _city_check(
    gdf: Any, id_field: str, profile: Any, layer: str, boundary: Any, thresholds: Any
) -> Any:
    """Check a layer file against the city's current layers (coverage, nesting, changes)."""
    from geo_router.city.layer_check import check_layer, current_layers

    context = current_layers(profile, layer)
    return check_layer(
        gdf,
        id_field,
        layer=layer,
        current=context.current,
        parent=context.parent,
        children=context.children,
        name_field=profile.layer(layer).name_field,
        current_names=context.current.names,
        boundary=boundary,
        thresholds=thresholds,
    )


def _require_column(gdf: Any, id_field: str, source: Path) -> None:
    """InputError naming the file and its columns when the id field is missing."""
    if id_field not in gdf.columns:
        columns = ", ".join(str(name) for name in gdf.columns if name != gdf.geometry.name)
        raise InputError(f"{source}: no id field {id_field!r} (columns: {columns})")


@app.command("validate")
def validate_command(
    layer_file: Annotated[Path, typer.Argument(help="Zone layer (GeoJSON, GPKG, Shapefile...).")],
    id_field: Annotated[
        str | None,
        typer.Option(help="Column holding the zone ids (default: the profile's, with --layer)."),
    ] = None,
    city: Annotated[
        Path | None,
        typer.Option(
            "--city",
            envvar="GEO_ROUTER_CITY",
            help="City profile to check against (with --layer; the demo city by default).",
            show_default=False,
        ),
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(help="The city layer this file would replace: coverage, nesting, changes."),
    ] = None,
    boundary: Annotated[
        Path | None,
        typer.Option(help="Polygon file the layer must cover (default: the current layer)."),
    ] = None,
    min_area_m2: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Overlaps, gaps, leftovers above this are errors "
            "(default: GEO_ROUTER_VALIDATION_MIN_AREA_M2 or 1).",
        ),
    ] = None,
    nesting_share: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=1,
            help="Share of a child's area needed in one parent "
            "(default: GEO_ROUTER_VALIDATION_NESTING_SHARE or 0.999).",
        ),
    ] = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Repair invalid geometries first (make_valid).")
    ] = False,
    max_repair_change: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Refuse repairs changing an area by more, 0.001 = 0.1% "
            "(default: GEO_ROUTER_VALIDATION_MAX_REPAIR_CHANGE or 0.001).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a zone layer: invalid features, ids, overlaps, gaps, and with --layer coverage,
    nesting both ways and what changes against the city's current layers (areas in m2).

    Exits 1 when the layer has blocking errors, 0 when it would be accepted, 2 when unreadable.
    """
    from geo_router.city.validation import Thresholds, repair_layer, validate_layer

    if id_field is None and layer is None:
        raise fail("give --id-field, or --layer (and --city) to take the profile's id field")
    with domain_errors():
        thresholds = _thresholds(
            Thresholds.from_settings(), min_area_m2, nesting_share, max_repair_change
        )
        profile = None
        if layer is not None:
            from geo_router.city.profile import load_profile

            profile = load_profile(city or DEMO_CITY_PROFILE)
        field = (id_field or profile.layer(layer).id_field) if profile and layer else id_field
        assert field is not None  # one of --id-field and --layer was given
        gdf = _read_layer(layer_file)
        _require_column(gdf, field, layer_file)
        repairs: list[Any] = []
        if repair:
            gdf, repairs = repair_layer(
                gdf, id_field=field, max_change=thresholds.max_repair_change, source=layer_file
            )
        shape = _read_boundary(boundary) if boundary is not None else None
        if profile is not None and layer is not None:
            result: Any = _city_check(gdf, field, profile, layer, shape, thresholds)
            report = result.report
        else:
            report = result = validate_layer(
                gdf, field, thresholds=thresholds, reference=shape, reference_label="the boundary"
            )
    if as_json:
        payload = {**result.to_dict(), "repairs": [_repair_dict(r) for r in repairs]}
        typer.echo(dumps(payload, indent=True))
    else:
        typer.echo(_report_text(result))
        for record in repairs:
            typer.echo(_repair_line(record))
    verdict = "refused" if report.blocking else "accepted"
    typer.echo(f"{layer_file}: layer would be {verdict}", err=True)
    if report.blocking:
        raise typer.Exit(EXIT_REFUSED)


def _thresholds(
    defaults: Any, min_area_m2: float | None, share: float | None, max_change: float | None
) -> Any:
    """The gate's thresholds: the options given, else the settings."""
    from dataclasses import replace

    given = {
        "min_area_m2": min_area_m2,
        "nesting_share": share,
        "max_repair_change": max_change,
    }
    try:
        return replace(defaults, **{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _repair_dict(record: Any) -> dict[str, Any]:
    """One repair record as a dictionary."""
    from dataclasses import asdict

    value: dict[str, Any] = asdict(record)
    return value


def _repair_line(record: Any) -> str:
    """``repaired 12 (Self-intersection...): 1,000.0 -> 999.5 m2 (0.0500%)``."""
    return (
        f"repaired {record.id} ({record.reason}): {record.area_before_m2:,.1f} -> "
        f"{record.area_after_m2:,.1f} m2 ({record.change_ratio:.4%})"
    )


__all__ = [
    "domain_errors",
    "load_router",
    "route_command",
    "route_file_command",
    "validate_command",
]
