"""The city profile's layer files become versions in the store.

At first start each layer's file becomes version 1, ``active``. Later starts compare the
file's checksum (``layers.layer_version``, cheap: no parsing) with the stored versions: an
unchanged file costs one query; a file that changed on disk becomes a ``staged`` version
through the validation gate, never a silent swap: a planner activates it, or not.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from geo_router.city.layers import layer_version, read_layer_frame
from geo_router.planning.versions import LayerVersions, json_data
from geo_router.store.schema import LayerVersionState, utcnow

__all__ = ["PROFILE_AUTHOR", "STALE_VALIDATION", "fail_interrupted", "seed_from_profile"]

log = logging.getLogger(__name__)

#: The author of the versions made from the profile's files.
PROFILE_AUTHOR = "city-profile"
#: An upload still ``validating`` this long after it was stored lost its process: no gate
#: runs that long (another process may be validating a younger one right now).
STALE_VALIDATION = timedelta(hours=1)


def fail_interrupted(
    versions: LayerVersions, older_than: timedelta = STALE_VALIDATION
) -> list[str]:
    """Mark ``failed`` the uploads whose validation was interrupted (a process killed
    mid-gate), so that none stays ``validating`` for ever; their ids."""
    note = "validation was interrupted (the process stopped): upload the file again"
    return versions.repo.fail_stale(utcnow() - older_than, actor=PROFILE_AUTHOR, note=note)


def seed_from_profile(versions: LayerVersions) -> dict[str, str]:
    """Store each profile layer file not stored yet; per layer what happened.

    ``"unchanged"`` (a version has the file's checksum), ``"seeded"`` (version 1, active),
    ``"staged"`` (the file changed on disk: a new staged version with the gate's report),
    ``"failed"`` (the changed file did not pass the gate's reading).
    """
    outcome: dict[str, str] = {}
    repo = versions.repo
    interrupted = fail_interrupted(versions)
    if interrupted:
        log.warning("uploads whose validation was interrupted are now failed: %s", interrupted)
    for spec in versions.profile.layers:
        checksum = layer_version(spec.path)
        if checksum in repo.checksums(spec.name):
            outcome[spec.name] = "unchanged"
            continue
        frame = read_layer_frame(spec.path)
        first = not repo.checksums(spec.name)
        state: LayerVersionState = "staged"
        if first:  # the file the city is served from: it passed the loader's checks
            geojson, report = frame.to_json(drop_id=True), None
        else:
            state, geojson, report = versions.gate(spec.name, frame)
        name = Path(spec.path).name
        row = repo.create_if_new(
            layer=spec.name,
            state_if_first="active",
            state=state,
            checksum=checksum,
            author=PROFILE_AUTHOR,
            note=f"from the city profile's {name}"
            + ("" if first else " (the file changed on disk)"),
            source_name=name,
            geojson=geojson,
            feature_count=len(frame),
            report=None if report is None else json_data(report),
        )
        if row is None:  # another process stored it meanwhile
            outcome[spec.name] = "unchanged"
            continue
        outcome[spec.name] = "seeded" if row.state == "active" else row.state
        log.info("layer %s: version %d from %s is %s", spec.name, row.number, name, row.state)
    return outcome
