"""City profile: one TOML file naming the zone layers, facility sets and categories of a city.

Paths in the file are relative to the file and are resolved to absolute paths on load. Every
problem becomes a :class:`~geo_router.errors.ProfileError` whose message names the file and the
key, e.g. ``city.toml: layers[2].parent: layer 'kecamatn' does not exist (layers: ...)``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from geo_router.errors import ProfileError

__all__ = [
    "AddressPointsSpec",
    "CategorySpec",
    "CityProfile",
    "FacilitySpec",
    "LayerSpec",
    "load_profile",
    "read_profile_toml",
]

#: Layer names and facility types become output keys (``<name>_id``, column names).
SAFE_IDENTIFIER = r"^[a-z][a-z0-9_]*$"


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Resolve a profile path against the profile's folder (passed as validation context)."""
    base_dir = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path.resolve() if path.is_absolute() else path


def _is_csv(path: Path) -> bool:
    """Whether a data file is read as CSV (plain or gzipped)."""
    name = path.name.lower()
    return name.endswith(".csv") or name.endswith(".csv.gz")


class _Spec(BaseModel):
    """Base of every profile section: unknown keys are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class LayerSpec(_Spec):
    """One zone layer (polygons) of the city."""

    name: str = Field(pattern=SAFE_IDENTIFIER, max_length=64)
    path: Path
    id_field: str = Field(min_length=1)
    name_field: str | None = None
    parent: str | None = None
    repair: bool = False

    _resolve = field_validator("path")(_resolve_path)


class FacilitySpec(_Spec):
    """One set of responder facilities (points); CSV files need ``lon_field``/``lat_field``."""

    type: str = Field(pattern=SAFE_IDENTIFIER, max_length=64)
    path: Path
    id_field: str = Field(min_length=1)
    name_field: str | None = None
    lon_field: str | None = None
    lat_field: str | None = None

    _resolve = field_validator("path")(_resolve_path)

    @model_validator(mode="after")
    def _csv_needs_coordinate_fields(self) -> FacilitySpec:
        if _is_csv(self.path) and not (self.lon_field and self.lat_field):
            raise ValueError("a CSV file needs lon_field and lat_field")
        return self


class CategorySpec(_Spec):
    """A report category: which agency handles it and which facility types respond."""

    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=64)
    name: str | None = None
    agency: str = Field(min_length=1)
    responders: list[str] = Field(default_factory=list)
    emergency: bool = False


class AddressPointsSpec(_Spec):
    """Address points for the offline geocoder; CSV files need ``lon_field``/``lat_field``."""

    path: Path
    street_field: str = Field(min_length=1)
    number_field: str = Field(min_length=1)
    lon_field: str | None = None
    lat_field: str | None = None
    kelurahan_field: str | None = None
    kecamatan_field: str | None = None
    rt_field: str | None = None
    rw_field: str | None = None

    _resolve = field_validator("path")(_resolve_path)

    @model_validator(mode="after")
    def _csv_needs_coordinate_fields(self) -> AddressPointsSpec:
        if _is_csv(self.path) and not (self.lon_field and self.lat_field):
            raise ValueError("a CSV file needs lon_field and lat_field")
        return self


def _duplicates(values: Iterable[str]) -> list[str]:
    """Values that occur more than once, in first-seen order."""
    seen: set[str] = set()
    dups: list[str] = []
    for value in values:
        if value in seen and value not in dups:
            dups.append(value)
        seen.add(value)
    return dups


class CityProfile(_Spec):
    """A whole city: zone layers, facility sets, categories, optional address points.

    ``base_dir`` and ``path`` are set by :func:`load_profile` (the profile file's folder and
    the file itself); a profile built in code has ``base_dir`` = the working directory.
    """

    name: str = Field(min_length=1)
    phone_region: str = Field("ID", pattern=r"^[A-Z]{2}$")
    layers: list[LayerSpec] = Field(min_length=1)
    facilities: list[FacilitySpec] = Field(default_factory=list)
    categories: list[CategorySpec] = Field(default_factory=list)
    address_points: AddressPointsSpec | None = None

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _path: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        """The folder that relative paths of the profile were resolved against."""
        return self._base_dir

    @property
    def path(self) -> Path | None:
        """The profile file, when loaded from one."""
        return self._path

    # The messages below start with the key so that load_profile can report
    # "<file>: <key>: <problem>" although model-level errors carry no location.
    @model_validator(mode="after")
    def _check_references(self) -> CityProfile:
        layer_names = [layer.name for layer in self.layers]
        for key, values in (
            ("layers", layer_names),
            ("facilities", [f.type for f in self.facilities]),
            ("categories", [c.code for c in self.categories]),
        ):
            dups = _duplicates(values)
            if dups:
                what = {"layers": "layer name", "facilities": "facility type"}.get(
                    key, "category code"
                )
                raise ValueError(f"{key}: duplicate {what} {', '.join(map(repr, dups))}")
        for i, facility in enumerate(self.facilities):
            if facility.type in layer_names:
                # versions and outputs key layers and facility types in one namespace
                raise ValueError(
                    f"facilities[{i}].type: '{facility.type}' is already the name of a layer"
                )
        for i, layer in enumerate(self.layers):
            if layer.parent is None:
                continue
            if layer.parent == layer.name:
                raise ValueError(
                    f"layers[{i}].parent: layer '{layer.name}' cannot be its own parent"
                )
            if layer.parent not in layer_names:
                raise ValueError(
                    f"layers[{i}].parent: layer '{layer.parent}' does not exist "
                    f"(layers: {', '.join(layer_names)})"
                )
        self._check_parent_cycles()
        types = [f.type for f in self.facilities]
        for i, category in enumerate(self.categories):
            for j, responder in enumerate(category.responders):
                if responder not in types:
                    raise ValueError(
                        f"categories[{i}].responders[{j}]: facility type '{responder}' does not "
                        f"exist (facilities: {', '.join(types) or 'none'})"
                    )
        return self

    def _check_parent_cycles(self) -> None:
        parents = {layer.name: layer.parent for layer in self.layers}
        for i, layer in enumerate(self.layers):
            chain = [layer.name]
            current = layer.parent
            while current is not None:
                if current in chain:
                    cycle = " -> ".join([*chain[chain.index(current) :], current])
                    raise ValueError(f"layers[{i}].parent: parent cycle {cycle}")
                chain.append(current)
                current = parents.get(current)

    def layer(self, name: str) -> LayerSpec:
        """The layer called ``name``; ProfileError listing the known layers otherwise."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        known = ", ".join(layer.name for layer in self.layers)
        raise ProfileError(f"{self._label()}: no layer '{name}' (layers: {known})")

    def facility(self, type: str) -> FacilitySpec:
        """The facility set of ``type``; ProfileError listing the known types otherwise."""
        for facility in self.facilities:
            if facility.type == type:
                return facility
        known = ", ".join(f.type for f in self.facilities) or "none"
        raise ProfileError(f"{self._label()}: no facility type '{type}' (facilities: {known})")

    def category(self, code: str) -> CategorySpec:
        """The category with ``code``; ProfileError listing the known codes otherwise."""
        for category in self.categories:
            if category.code == code:
                return category
        known = ", ".join(c.code for c in self.categories) or "none"
        raise ProfileError(f"{self._label()}: no category '{code}' (categories: {known})")

    def _label(self) -> str:
        return self._path.name if self._path is not None else f"profile '{self.name}'"


def _loc_text(loc: tuple[Any, ...]) -> str:
    """Render a pydantic location as ``layers[2].parent``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _error_text(error: Any) -> str:
    """One pydantic error as ``<key>: <problem>``."""
    loc = tuple(p for p in error["loc"] if p not in ("function-after",))
    if error["type"] == "extra_forbidden":
        where = _loc_text(loc[:-1]) or "the top level"
        return f"{_loc_text(loc)}: unknown key '{loc[-1]}' in {where}"
    if error["type"] == "missing":
        return f"{_loc_text(loc)}: required key is missing"
    ctx_error = (error.get("ctx") or {}).get("error")
    message = str(ctx_error) if ctx_error is not None else error["msg"]
    key = _loc_text(loc)
    if key and not message.startswith(key.split("[")[0]):
        return f"{key}: {message}"
    return message


def _check_files_exist(profile: CityProfile, label: str) -> None:
    """Every data file the profile names must exist (checked once, at load)."""
    entries: list[tuple[str, Path]] = [
        (f"layers[{i}].path", layer.path) for i, layer in enumerate(profile.layers)
    ]
    entries += [(f"facilities[{i}].path", f.path) for i, f in enumerate(profile.facilities)]
    if profile.address_points is not None:
        entries.append(("address_points.path", profile.address_points.path))
    for key, path in entries:
        if not path.exists():
            raise ProfileError(
                f"{label}: {key}: file not found: {path}", detail={"key": key, "path": str(path)}
            )


def read_profile_toml(file: Path) -> tuple[bytes, dict[str, Any]]:
    """A profile file's bytes and its TOML table, before any check of its keys.

    Raises
    ------
    ProfileError
        The file cannot be read, is not UTF-8 or is not TOML (the file named).
    """
    label = file.name
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ProfileError(f"{label}: cannot read profile {file}: {exc.strerror or exc}") from exc
    try:
        return raw, tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{label}: not UTF-8 text ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{label}: TOML syntax error: {exc}") from exc


def load_profile(path: str | Path) -> CityProfile:
    """Read and check a city profile TOML file.

    Parameters
    ----------
    path
        The profile file; relative paths inside it are resolved against its folder.

    Returns
    -------
    CityProfile
        The checked profile, every data path absolute and existing.

    Raises
    ------
    ProfileError
        Unreadable file, TOML syntax error (with line), unknown or missing keys, bad values,
        duplicate names, unknown parents/responders, parent cycles, missing data files.
    """
    file = Path(path).expanduser().resolve()
    label = file.name
    _raw, data = read_profile_toml(file)
    try:
        profile = CityProfile.model_validate(data, context={"base_dir": file.parent})
    except ValidationError as exc:
        # An unknown key is usually a misspelt one: report it before the "missing" it causes.
        errors = sorted(exc.errors(), key=lambda err: err["type"] != "extra_forbidden")
        problems = [_error_text(err) for err in errors]
        raise ProfileError(
            f"{label}: {problems[0]}"
            + (
                f" (and {len(problems) - 1} more: {'; '.join(problems[1:4])})"
                if len(problems) > 1
                else ""
            ),
            detail={"file": str(file), "problems": problems},
        ) from None
    profile._base_dir = file.parent
    profile._path = file
    _check_files_exist(profile, label)
    return profile
