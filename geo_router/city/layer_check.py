"""Check a new version of one layer against the city's current layers.

:func:`check_layer` runs the validation gate with the city's context (coverage of the current
layer or a boundary, nesting in the current parent layer, nesting of the current child layers
in the new one) and the "what changes" comparison. :func:`current_layers` reads that context
from a city profile's files; once versions live in the store, the caller passes the active
versions instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo_router.city.layer_diff import LayerDiff, diff_layers
from geo_router.city.layers import ZoneLayer, load_layer
from geo_router.city.profile import CityProfile
from geo_router.city.validation import (
    Thresholds,
    ValidationReport,
    Zones,
    geometry_array,
    ids_as_str,
    validate_layer,
)
from geo_router.city.validation.geometry import POLYGONAL, geom_type_names

__all__ = ["CityLayers", "LayerCheck", "check_layer", "current_layers"]


@dataclass(slots=True)
class CityLayers:
    """The current version of a layer and of the layers it nests with."""

    current: ZoneLayer
    parent: ZoneLayer | None = None
    children: list[ZoneLayer] = field(default_factory=list)


@dataclass(slots=True)
class LayerCheck:
    """The gate's report on a new layer version and what it would change."""

    report: ValidationReport
    changes: LayerDiff | None

    @property
    def blocking(self) -> bool:
        """Whether the new version has errors (it cannot be activated)."""
        return self.report.blocking

    def to_dict(self) -> dict[str, Any]:
        """The report's dictionary plus ``changes`` (None without a current layer)."""
        return {
            **self.report.to_dict(),
            "changes": None if self.changes is None else self.changes.to_dict(),
        }

    def to_text(self) -> str:
        """The report, then the summary of what changes."""
        text = self.report.to_text()
        if self.changes is not None:
            text += "\n" + self.changes.to_text()
        return text


def current_layers(profile: CityProfile, layer: str) -> CityLayers:
    """The profile's files for ``layer``, its parent and the layers that name it as parent."""
    spec = profile.layer(layer)
    parent = load_layer(profile.layer(spec.parent)) if spec.parent is not None else None
    children = [load_layer(other) for other in profile.layers if other.parent == layer]
    return CityLayers(current=load_layer(spec), parent=parent, children=children)


def check_layer(
    gdf: gpd.GeoDataFrame,
    id_field: str,
    *,
    layer: str,
    current: Zones | None = None,
    parent: Zones | None = None,
    children: Sequence[Zones] = (),
    name_field: str | None = None,
    current_names: Any = None,
    boundary: Any = None,
    thresholds: Thresholds | None = None,
) -> LayerCheck:
    """Validate a new version of ``layer`` (EPSG:4326) against the city's current layers.

    Parameters
    ----------
    gdf, id_field
        The new version and its id column.
    layer
        The layer's name.
    current
        The active version: the coverage reference (unless ``boundary``) and the diff base.
    parent, children
        The active parent layer and child layers, for nesting both ways.
    name_field, current_names
        The new version's name column and the current names, to report renames.
    boundary
        A (Multi)Polygon the layer must cover instead of the current layer's union.
    thresholds
        The gate's tolerances.
    """
    limits = thresholds or Thresholds()
    if boundary is not None:
        reference, label = boundary, "the city boundary"
    elif current is not None:
        reference = shapely.union_all(np.asarray(current.geometries, dtype=object))
        label = f"the current {layer} layer"
    else:
        reference, label = None, "the reference"
    report = validate_layer(
        gdf,
        id_field,
        thresholds=limits,
        layer=layer,
        reference=reference,
        reference_label=label,
        parent=parent,
        children=children,
    )
    if current is None:
        return LayerCheck(report, None)
    ids = ids_as_str(gdf[id_field])
    geoms = geometry_array(gdf)
    usable = np.isin(geom_type_names(geoms), POLYGONAL) & np.array([i is not None for i in ids])
    names = ids_as_str(gdf[name_field])[usable] if name_field in gdf.columns else None
    changes = diff_layers(
        current.ids,
        current.geometries,
        ids[usable],
        geoms[usable],
        old_names=current_names if names is not None else None,
        new_names=names if current_names is not None else None,
        min_area_m2=limits.min_area_m2,
        layer=layer,
    )
    return LayerCheck(report, changes)
