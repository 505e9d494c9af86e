"""Versions of the city's zone layers: upload through the validation gate, history, retire.

An upload is stored at once, ``validating`` (or ``failed`` when the file cannot be read),
then the gate (:func:`geo_router.city.layer_check.check_layer`) checks it against the
layers in force: the active stored versions (the profile's files for a layer not seeded
yet), for coverage, nesting in the parent layer and nesting of the child layers in it. The
version becomes ``staged`` with its findings, errors included: a version with errors stays
staged and cannot be activated. :meth:`LayerVersions.begin_upload` and
:meth:`LayerVersions.finish_upload` split the two steps, so that a server answers before the
gate runs; :meth:`LayerVersions.upload` does both. Nothing here activates a version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import orjson

from geo_router.city.layer_check import check_layer
from geo_router.city.layers import load_layer
from geo_router.city.profile import CityProfile, LayerSpec
from geo_router.city.validation import Thresholds, geometry_array, ids_as_str
from geo_router.errors import NotFoundError, VersionConflictError
from geo_router.planning.upload_file import (
    UnreadableUploadError,
    UploadLimits,
    check_size,
    checksum_of,
    read_upload,
    suffix_of,
)
from geo_router.store.layer_versions_repo import LayerVersionRow, LayerVersionsRepo, VersionEvent
from geo_router.store.schema import LayerVersionState

if TYPE_CHECKING:
    from geo_router.intake.audit import AuditService, Who

__all__ = ["LayerVersions", "PendingUpload", "StoredZones", "json_data", "zones_of_version"]

log = logging.getLogger(__name__)

#: States a version may be retired from (``active`` only when another one stays active).
_RETIRABLE = ("staged", "failed", "active")


@dataclass(slots=True)
class StoredZones:
    """A layer's zones as the gate reads them (``validation.Zones``), with their names."""

    name: str
    ids: np.ndarray
    geometries: np.ndarray
    names: np.ndarray | None = None


@dataclass(slots=True)
class PendingUpload:
    """A stored upload and its layer, waiting for the gate (``frame`` None when failed)."""

    version: LayerVersionRow
    frame: gpd.GeoDataFrame | None


def json_data(value: Any) -> Any:
    """Plain JSON data (numpy numbers become Python ones), as both backends store it."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))


def zones_of_version(row: LayerVersionRow, spec: LayerSpec) -> StoredZones:
    """The zones of a stored version with its GeoJSON."""
    features = orjson.loads(row.geojson or '{"features": []}')["features"]
    gdf = gpd.GeoDataFrame.from_features(features, crs=4326)
    names = None
    if spec.name_field is not None and spec.name_field in gdf.columns:
        names = ids_as_str(gdf[spec.name_field])
    return StoredZones(spec.name, ids_as_str(gdf[spec.id_field]), geometry_array(gdf), names)


class LayerVersions:
    """The layer versions of one city in one store."""

    def __init__(
        self,
        repo: LayerVersionsRepo,
        profile: CityProfile,
        *,
        audit: AuditService | None = None,
        thresholds: Thresholds | None = None,
        limits: UploadLimits | None = None,
    ) -> None:
        self.repo = repo
        self.profile = profile
        self.audit = audit
        self.thresholds = thresholds or Thresholds.from_settings()
        self.limits = limits or UploadLimits.from_settings()

    # --- reading

    def spec(self, layer: str) -> LayerSpec:
        """The profile's spec of ``layer``; 404 naming the known layers otherwise."""
        for spec in self.profile.layers:
            if spec.name == layer:
                return spec
        known = ", ".join(s.name for s in self.profile.layers)
        raise NotFoundError(f"no layer {layer!r} (layers: {known})", detail={"layer": layer})

    def list_versions(self, layer: str) -> list[LayerVersionRow]:
        """The layer's versions, newest first."""
        self.spec(layer)
        return self.repo.of_layer(layer)

    def history(self, layer: str) -> list[VersionEvent]:
        """Every state change of the layer's versions, oldest first."""
        self.spec(layer)
        return self.repo.history(layer)

    def get_version(self, version_id: str, layer: str | None = None) -> LayerVersionRow:
        """The version with this id (of ``layer`` when given); 404 otherwise."""
        row = self.repo.get(version_id)
        if row is None or (layer is not None and row.layer != layer):
            where = f" of layer {layer!r}" if layer is not None else ""
            raise NotFoundError(
                f"no layer version {version_id!r}{where}", detail={"version": version_id}
            )
        return row

    def zones_in_force(self, layer: str) -> StoredZones:
        """The layer's active stored version, or the profile's file before seeding."""
        spec = self.spec(layer)
        active = self.repo.active(layer)
        if active:
            return zones_of_version(active[0], spec)
        loaded = load_layer(spec)
        return StoredZones(layer, loaded.ids, loaded.geometries, loaded.names)

    # --- upload

    def begin_upload(
        self, layer: str, data: bytes, filename: str, note: str | None, who: Who
    ) -> PendingUpload:
        """Check the limits, read the file and store the version (``validating``, or
        ``failed`` when unreadable). Raises 404 (layer), 413 (size), 422 (format, vertices)
        before storing anything."""
        self.spec(layer)
        check_size(len(data), self.limits)
        suffix_of(filename)
        checksum = checksum_of(data)
        source = PurePath(filename).name[-200:]  # the planner's file name, for the history
        try:
            frame = read_upload(data, filename, self.limits)
        except UnreadableUploadError as exc:
            row = self.repo.create(
                layer=layer,
                state="failed",
                checksum=checksum,
                author=who.name,
                note=note,
                source_name=source,
                report={"error": exc.message},
            )
            self._audit("upload", row, who)
            return PendingUpload(row, None)
        row = self.repo.create(
            layer=layer,
            state="validating",
            checksum=checksum,
            author=who.name,
            note=note,
            source_name=source,
            feature_count=len(frame),
        )
        self._audit("upload", row, who)
        return PendingUpload(row, frame)

    def finish_upload(self, pending: PendingUpload, who: Who) -> LayerVersionRow:
        """Run the gate on a ``validating`` upload and store it ``staged`` with its report
        (``failed`` when the layer lacks its id column or the gate itself fails)."""
        if pending.frame is None:
            return pending.version
        version = pending.version
        state, geojson, report = self.gate(version.layer, pending.frame)
        self.repo.finish(
            version.id,
            state=state,
            actor=who.name,
            geojson=geojson,
            feature_count=len(pending.frame),
            report=report,
            note="validation gate",
        )
        return self.get_version(version.id)

    def upload(
        self, layer: str, data: bytes, filename: str, note: str | None, who: Who
    ) -> LayerVersionRow:
        """:meth:`begin_upload` then :meth:`finish_upload`, in this thread."""
        return self.finish_upload(self.begin_upload(layer, data, filename, note, who), who)

    def gate(
        self, layer: str, frame: gpd.GeoDataFrame
    ) -> tuple[LayerVersionState, str | None, dict[str, Any]]:
        """The state, GeoJSON and report of a new version of ``layer`` after the gate."""
        spec = self.spec(layer)
        if spec.id_field not in frame.columns:
            columns = [str(c) for c in frame.columns if c != frame.geometry.name]
            message = f"the layer has no id column {spec.id_field!r} (columns: {columns})"
            return "failed", None, {"error": message}
        try:
            check = self._check(spec, frame)
        except Exception as exc:  # the gate must end every upload in a final state
            log.exception("the validation gate failed on a %s upload", layer)
            return "failed", None, {"error": f"validation failed: {type(exc).__name__}"}
        return "staged", frame.to_json(drop_id=True), json_data(check.to_dict())

    def _check(self, spec: LayerSpec, frame: gpd.GeoDataFrame) -> Any:
        current = self._in_force_or_none(spec.name)
        parent = self._in_force_or_none(spec.parent) if spec.parent else None
        children = [
            zones
            for other in self.profile.layers
            if other.parent == spec.name
            and (zones := self._in_force_or_none(other.name)) is not None
        ]
        return check_layer(
            frame,
            spec.id_field,
            layer=spec.name,
            current=current,
            parent=parent,
            children=children,
            name_field=spec.name_field,
            current_names=None if current is None else current.names,
            thresholds=self.thresholds,
        )

    def _in_force_or_none(self, layer: str) -> StoredZones | None:
        try:
            return self.zones_in_force(layer)
        except Exception:  # a context layer that cannot be read: checked without it
            log.exception("the layer %s in force cannot be read for the gate", layer)
            return None

    # --- retire

    def retire(
        self, version_id: str, who: Who, *, layer: str | None = None, note: str | None = None
    ) -> LayerVersionRow:
        """Retire a staged, failed or (not the only) active version; 409 otherwise."""
        row = self.get_version(version_id, layer)
        if row.state == "active" and len(self.repo.active(row.layer)) <= 1:
            raise VersionConflictError(
                f"version {row.number} of {row.layer!r} is the only active one: activate "
                "another version before retiring it",
                detail={"version": row.id, "state": row.state},
            )
        before = self.repo.change_state(
            row.id, expected=_RETIRABLE, to="retired", actor=who.name, note=note
        )
        if before not in _RETIRABLE:
            raise VersionConflictError(
                f"version {row.number} of {row.layer!r} is {before}: it cannot be retired",
                detail={"version": row.id, "state": before},
            )
        retired = self.get_version(row.id)
        self._audit("retire", retired, who)
        return retired

    def _audit(self, event: str, row: LayerVersionRow, who: Who) -> None:
        """An audit record of an upload or a retirement (never blocks it)."""
        if self.audit is None:
            return
        self.audit.record(
            "layer_change",
            "city_maintenance",
            who,
            [f"layer:{row.layer}"],
            {"event": event, "version": row.id, "number": row.number, "state": row.state},
            fail_closed=False,
        )
