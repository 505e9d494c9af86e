"""Homes only encrypted: subscribers' and registry-located reports' points move to ``home_enc``.

Existing points are sealed in place with the store's encryption key, handed to
``geo_router.store.database.upgrade(..., cipher=secrets)`` (``Store.open``, the app and
``geo-router db upgrade`` pass it); then the plaintext goes: ``subscribers.lon``/``lat`` are
dropped, and a report located at a registered caller's home keeps its point and the decision
routed from it sealed, its clear decision without any home trace, and the answer recorded
for its idempotency key sealed. Without the key, a database holding homes is refused with
a message naming the fix; an empty one needs none.

Revision ID: 0006_encrypted_homes
Revises: 0005_secrets_check
"""

from __future__ import annotations

import json
from typing import Any, cast

import sqlalchemy as sa
from alembic import context, op

from geo_router.errors import ConfigurationError
from geo_router.store.schema import JSONType
from geo_router.store.sealed_homes import Cipher, open_home, scrub_decision, seal_home
from geo_router.store.secrets_check import StoreSecrets, verify_secrets

revision = "0006_encrypted_homes"
down_revision = "0005_secrets_check"
branch_labels = None
depends_on = None

_HOME_SOURCE = "registered_caller"  # a revision keeps its own literal copy

_subscribers = sa.table(
    "subscribers",
    sa.column("id", sa.String),
    sa.column("lon", sa.Float),
    sa.column("lat", sa.Float),
    sa.column("home_enc", sa.Text),
)
_reports = sa.table(
    "reports",
    sa.column("id", sa.String),
    sa.column("lon", sa.Float),
    sa.column("lat", sa.Float),
    sa.column("location_source", sa.String),
    sa.column("decision", JSONType),
    sa.column("home_enc", sa.Text),
)
_idempotency = sa.table(
    "idempotency_keys",
    sa.column("id", sa.Integer),
    sa.column("report_id", sa.String),
    sa.column("response", JSONType),
)


def _cipher(rows: int) -> Cipher:
    """The store's key from ``upgrade(..., cipher=...)``; refused when rows need it and none."""
    cipher: Cipher | None = context.config.attributes.get("cipher")
    if cipher is None:
        raise ConfigurationError(
            f"migration 0006 encrypts {rows} stored home points and needs the secrets: run "
            "'geo-router db upgrade' (or start the service) with the secrets configured "
            "(GEO_ROUTER_SECRETS_FILE, or GEO_ROUTER_PEPPER and GEO_ROUTER_ENCRYPTION_KEY)"
        )
    if hasattr(cipher, "pepper_check"):  # the service's Secrets: they must open this store
        verify_secrets(op.get_bind(), cast(StoreSecrets, cipher))
    return cipher


def _count(conn: sa.Connection, query: sa.Select[Any]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("home_enc", sa.Text(), nullable=True))
    op.add_column("reports", sa.Column("home_enc", sa.Text(), nullable=True))
    conn = op.get_bind()
    s, r = _subscribers.c, _reports.c
    homes = sa.select(s.id, s.lon, s.lat).where(s.lon.is_not(None), s.lat.is_not(None))
    located = sa.select(r.id, r.lon, r.lat, r.decision).where(
        r.location_source == _HOME_SOURCE, r.lon.is_not(None), r.lat.is_not(None)
    )
    rows = _count(conn, homes) + _count(conn, located)
    if rows:
        cipher = _cipher(rows)
        for sid, lon, lat in conn.execute(homes).all():
            conn.execute(
                _subscribers.update()
                .where(s.id == sid)
                .values(home_enc=seal_home(cipher, lon, lat))
            )
        for rid, lon, lat, decision in conn.execute(located).all():
            decision = decision or {}
            conn.execute(
                _reports.update()
                .where(r.id == rid)
                .values(
                    home_enc=seal_home(cipher, lon, lat, decision),
                    decision=scrub_decision(decision),
                    lon=None,
                    lat=None,
                )
            )
            _seal_answers(conn, cipher, rid)
    _drop_columns("subscribers", "lon", "lat")


def _drop_columns(table: str, *columns: str) -> None:
    """ALTER TABLE ... DROP COLUMN, also on SQLite (3.35+): batch mode would copy the table,
    and dropping ``reports`` would cascade to its zones, history and idempotency keys."""
    for column in columns:
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def _seal_answers(conn: sa.Connection, cipher: Cipher, report_id: str) -> None:
    """Seal the answers recorded for a report's idempotency keys (they hold its point)."""
    i = _idempotency.c
    for key_id, response in conn.execute(
        sa.select(i.id, i.response).where(i.report_id == report_id)
    ).all():
        if isinstance(response, dict) and "sealed" not in response:
            sealed = {"sealed": cipher.encrypt(json.dumps(response))}
            conn.execute(_idempotency.update().where(i.id == key_id).values(response=sealed))


def downgrade() -> None:
    op.add_column("subscribers", sa.Column("lon", sa.Float(), nullable=True))
    op.add_column("subscribers", sa.Column("lat", sa.Float(), nullable=True))
    conn = op.get_bind()
    s, r = _subscribers.c, _reports.c
    sealed_homes = sa.select(s.id, s.home_enc).where(s.home_enc.is_not(None))
    sealed_reports = sa.select(r.id, r.home_enc).where(r.home_enc.is_not(None))
    rows = _count(conn, sealed_homes) + _count(conn, sealed_reports)
    if rows:
        cipher = _cipher(rows)
        for sid, token in conn.execute(sealed_homes).all():
            home = open_home(cipher, token)
            conn.execute(
                _subscribers.update().where(s.id == sid).values(lon=home.lon, lat=home.lat)
            )
        for rid, token in conn.execute(sealed_reports).all():
            home = open_home(cipher, token)
            values: dict[str, Any] = {"lon": home.lon, "lat": home.lat}
            if home.decision is not None:
                values["decision"] = home.decision
            conn.execute(_reports.update().where(r.id == rid).values(**values))
        i = _idempotency.c
        for key_id, response in conn.execute(sa.select(i.id, i.response)).all():
            if isinstance(response, dict) and "sealed" in response:
                opened = json.loads(cipher.decrypt(response["sealed"]))
                conn.execute(_idempotency.update().where(i.id == key_id).values(response=opened))
    _drop_columns("reports", "home_enc")
    _drop_columns("subscribers", "home_enc")
