"""Versions of the city's zone layers in the store: every SQL statement of ``layer_versions``.

A version is numbered per layer (1, 2, ...) when it is created; every change of its state is
one row of ``layer_version_events`` (who, when, from, to, note), written in the same
transaction as the change, so the history is never behind the state.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Required, TypedDict, Unpack

import sqlalchemy as sa

from geo_router.store.engine import write_transaction
from geo_router.store.schema import (
    LayerVersionState,
    layer_version_events,
    layer_versions,
    utcnow,
)

__all__ = ["LayerVersionRow", "LayerVersionsRepo", "VersionEvent", "new_version_id"]

#: Columns of a version without its (possibly large) zones.
_SUMMARY = [c for c in layer_versions.c if c.name != "geojson"]


def new_version_id() -> str:
    """A random version id (``lv_`` + 12 URL-safe characters): what an upload answers."""
    return "lv_" + secrets.token_urlsafe(9)


@dataclass(frozen=True, slots=True)
class LayerVersionRow:
    """One stored version of a layer (``geojson`` only when asked for)."""

    id: str
    layer: str
    number: int
    state: str
    checksum: str
    author: str
    note: str | None
    source_name: str | None
    created_at: datetime
    effective_at: datetime | None
    feature_count: int | None
    report: dict[str, Any] | None
    geojson: str | None = None

    def to_dict(self, *, report: bool = False) -> dict[str, Any]:
        """Plain JSON data (the validation report too when ``report``; never the zones)."""
        data: dict[str, Any] = {
            "id": self.id,
            "layer": self.layer,
            "number": self.number,
            "state": self.state,
            "checksum": self.checksum,
            "author": self.author,
            "note": self.note,
            "source": self.source_name,
            "created_at": self.created_at.isoformat(),
            "effective_at": None if self.effective_at is None else self.effective_at.isoformat(),
            "feature_count": self.feature_count,
        }
        if report:
            data["report"] = self.report
        return data


@dataclass(frozen=True, slots=True)
class VersionEvent:
    """One change of a version's state."""

    version_id: str
    number: int
    at: datetime
    actor: str
    from_state: str | None
    to_state: str
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "version": self.version_id,
            "number": self.number,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "from": self.from_state,
            "to": self.to_state,
            "note": self.note,
        }


class NewVersion(TypedDict, total=False):
    """What a new version is stored with (``LayerVersionsRepo.create``)."""

    layer: Required[str]
    state: Required[LayerVersionState]
    checksum: Required[str]
    author: Required[str]
    note: Required[str | None]
    source_name: str | None
    geojson: str | None
    feature_count: int | None
    report: dict[str, Any] | None


_OPTIONAL_FIELDS = ("source_name", "geojson", "feature_count", "report")


def _row(row: sa.Row[Any]) -> LayerVersionRow:
    data: dict[str, Any] = row._asdict()
    fields: dict[str, Any] = {k: data.get(k) for k in LayerVersionRow.__slots__}
    return LayerVersionRow(**fields)


class LayerVersionsRepo:
    """The layer versions of one store (either backend)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(self, **version: Unpack[NewVersion]) -> LayerVersionRow:
        """Insert a version numbered after the layer's last one, and its first event."""
        with write_transaction(self.engine) as conn:
            return self._insert(conn, version)

    def create_if_new(
        self, *, state_if_first: LayerVersionState, **version: Unpack[NewVersion]
    ) -> LayerVersionRow | None:
        """Insert a version unless one of the layer's versions has this checksum (None then):
        ``state_if_first`` when the layer has no version yet, else ``state``. Several
        processes seeding at once store it once."""
        layers = layer_versions.c
        try:
            with write_transaction(self.engine) as conn:
                checksums = set(
                    conn.execute(
                        sa.select(layers.checksum).where(layers.layer == version["layer"])
                    ).scalars()
                )
                if version["checksum"] in checksums:
                    return None
                if not checksums:
                    version = {**version, "state": state_if_first}
                return self._insert(conn, version)
        except sa.exc.IntegrityError:  # another process inserted the same number first
            return None

    def _insert(self, conn: sa.Connection, given: NewVersion) -> LayerVersionRow:
        last = conn.execute(
            sa.select(sa.func.max(layer_versions.c.number)).where(
                layer_versions.c.layer == given["layer"]
            )
        ).scalar()
        values: dict[str, Any] = {
            **dict.fromkeys(_OPTIONAL_FIELDS),
            **given,
            "id": new_version_id(),
            "number": int(last or 0) + 1,
            "created_at": utcnow(),
            "effective_at": None,
        }
        conn.execute(layer_versions.insert().values(**values))
        self._event(
            conn,
            values["id"],
            values["created_at"],
            values["author"],
            None,
            values["state"],
            values["note"],
        )
        return LayerVersionRow(**values)

    def finish(
        self,
        version_id: str,
        *,
        state: LayerVersionState,
        actor: str,
        geojson: str | None,
        feature_count: int | None,
        report: dict[str, Any] | None,
        note: str | None = None,
    ) -> None:
        """Store a validated version's zones and report and move it out of ``validating``."""
        with write_transaction(self.engine) as conn:
            before = conn.execute(
                sa.select(layer_versions.c.state).where(layer_versions.c.id == version_id)
            ).scalar_one()
            conn.execute(
                layer_versions.update()
                .where(layer_versions.c.id == version_id)
                .values(state=state, geojson=geojson, feature_count=feature_count, report=report)
            )
            self._event(conn, version_id, utcnow(), actor, before, state, note)

    def change_state(
        self,
        version_id: str,
        *,
        expected: Sequence[str],
        to: LayerVersionState,
        actor: str,
        note: str | None,
    ) -> str | None:
        """Move a version to ``to`` if its state is one of ``expected``; the state it had
        (None when it does not exist). Checked and changed in one transaction."""
        with write_transaction(self.engine) as conn:
            before = conn.execute(
                sa.select(layer_versions.c.state).where(layer_versions.c.id == version_id)
            ).scalar()
            if before is None or before not in expected:
                return None if before is None else str(before)
            conn.execute(
                layer_versions.update().where(layer_versions.c.id == version_id).values(state=to)
            )
            self._event(conn, version_id, utcnow(), actor, before, to, note)
            return str(before)

    def fail_stale(self, created_before: datetime, *, actor: str, note: str) -> list[str]:
        """Mark ``failed`` every version still ``validating`` that was created before
        ``created_before`` (its process stopped mid-gate); their ids."""
        with write_transaction(self.engine) as conn:
            stale = list(
                conn.execute(
                    sa.select(layer_versions.c.id).where(
                        layer_versions.c.state == "validating",
                        layer_versions.c.created_at < created_before,
                    )
                ).scalars()
            )
            if stale:
                conn.execute(
                    layer_versions.update()
                    .where(layer_versions.c.id.in_(stale))
                    .values(state="failed", report={"error": note})
                )
            now = utcnow()
            for version_id in stale:
                self._event(conn, version_id, now, actor, "validating", "failed", note)
        return [str(v) for v in stale]

    def get(self, version_id: str, *, with_zones: bool = False) -> LayerVersionRow | None:
        """The version with this id (its GeoJSON too when ``with_zones``), or None."""
        columns = list(layer_versions.c) if with_zones else _SUMMARY
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*columns).where(layer_versions.c.id == version_id)).first()
        return None if row is None else _row(row)

    def of_layer(self, layer: str) -> list[LayerVersionRow]:
        """The layer's versions, newest first (without their zones)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*_SUMMARY)
                .where(layer_versions.c.layer == layer)
                .order_by(layer_versions.c.number.desc())
            ).all()
        return [_row(r) for r in rows]

    def active(self, layer: str) -> list[LayerVersionRow]:
        """The layer's active versions with their zones (one, once seeded)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(layer_versions)
                .where(layer_versions.c.layer == layer, layer_versions.c.state == "active")
                .order_by(layer_versions.c.number.desc())
            ).all()
        return [_row(r) for r in rows]

    def checksums(self, layer: str) -> set[str]:
        """The checksums of every version of the layer (any state)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(layer_versions.c.checksum).where(layer_versions.c.layer == layer)
            ).scalars()
            return {str(c) for c in rows}

    def history(self, layer: str) -> list[VersionEvent]:
        """Every state change of the layer's versions, oldest first."""
        query = (
            sa.select(
                layer_version_events.c.version_id,
                layer_versions.c.number,
                layer_version_events.c.at,
                layer_version_events.c.actor,
                layer_version_events.c.from_state,
                layer_version_events.c.to_state,
                layer_version_events.c.note,
            )
            .join(layer_versions, layer_versions.c.id == layer_version_events.c.version_id)
            .where(layer_versions.c.layer == layer)
            .order_by(layer_version_events.c.at, layer_version_events.c.id)
        )
        with self.engine.connect() as conn:
            return [VersionEvent(**r._asdict()) for r in conn.execute(query)]

    @staticmethod
    def _event(
        conn: sa.Connection,
        version_id: str,
        at: datetime,
        actor: str,
        from_state: str | None,
        to_state: str,
        note: str | None,
    ) -> None:
        conn.execute(
            layer_version_events.insert().values(
                version_id=version_id,
                at=at,
                actor=actor,
                from_state=from_state,
                to_state=to_state,
                note=note,
            )
        )
