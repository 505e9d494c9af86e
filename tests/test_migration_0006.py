"""Migration 0006_encrypted_homes: plaintext homes of an existing store are sealed in place."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from geo_router.errors import ConfigurationError, StoreSecretsMismatchError
from geo_router.intake.secrets import Secrets
from geo_router.store import current_revision, make_engine, upgrade
from geo_router.store.database import alembic_config
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.schema import JSONType
from geo_router.store.subscribers_repo import SubscribersRepo

T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
HOME = (107.6123456, -6.9123456)
DECISION = {
    "lon": HOME[0],
    "lat": HOME[1],
    "responders": {"fire_station": [{"facility_id": "F1", "distance_m": 812.0, "bearing_deg": 41}]},
}

_old_subscribers = sa.table(
    "subscribers",
    *(sa.column(n) for n in ("id", "phone_hash", "phone_enc", "lon", "lat", "verification_status")),
    sa.column("zones", JSONType),
    sa.column("responders", JSONType),
    sa.column("created_at", sa.DateTime),
    sa.column("updated_at", sa.DateTime),
)
_old_reports = sa.table(
    "reports",
    *(sa.column(n) for n in ("id", "channel", "category", "status", "lon", "lat")),
    sa.column("location_source"),
    sa.column("decision", JSONType),
    sa.column("flags", JSONType),
    sa.column("created_at", sa.DateTime),
    sa.column("updated_at", sa.DateTime),
)
_old_keys = sa.table(
    "idempotency_keys",
    *(sa.column(n) for n in ("key", "api_key_id", "request_hash", "report_id")),
    sa.column("response", JSONType),
    sa.column("created_at", sa.DateTime),
)


def _store_at_0004_with_a_home(engine: sa.Engine, secrets: Secrets) -> None:
    """A store at 0004 whose one subscriber's phone the secrets open (the check needs it)."""
    upgrade(engine, "0004")
    times = {"created_at": T0.replace(tzinfo=None), "updated_at": T0.replace(tzinfo=None)}
    report = {
        "id": "r_home",
        "channel": "call",
        "category": "waste",
        "status": "open",
        "lon": HOME[0],
        "lat": HOME[1],
        "location_source": "registered_caller",
        "decision": DECISION,
        "flags": [],
        **times,
    }
    with engine.begin() as conn:
        conn.execute(
            _old_subscribers.insert().values(
                id="s1",
                phone_hash=secrets.hash_phone("+6281234567890"),
                phone_enc=secrets.encrypt("+6281234567890"),
                lon=HOME[0],
                lat=HOME[1],
                verification_status="unverified",
                zones={"kelurahan": {"zone_id": "K1"}},
                responders={},
                **times,
            )
        )
        conn.execute(_old_reports.insert().values(**report))
        given = {**report, "id": "r_given", "location_source": "given", "lon": 107.7, "lat": -6.8}
        given["decision"] = {"lon": 107.7, "lat": -6.8}
        conn.execute(_old_reports.insert().values(**given))
        conn.execute(
            _old_keys.insert().values(
                key="k1",
                api_key_id="key",
                request_hash="x",
                report_id="r_home",
                response={**report, "created_at": T0.isoformat(), "updated_at": T0.isoformat()},
                created_at=T0.replace(tzinfo=None),
            )
        )


def _everything(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(
            str(value)
            for table in sa.inspect(conn).get_table_names()
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"'))
            for value in row
        )


def test_existing_homes_are_sealed_in_place(database_url: str) -> None:
    engine = make_engine(database_url)
    secrets = Secrets.generate()
    try:
        _store_at_0004_with_a_home(engine, secrets)
        assert "107.6123456" in _everything(engine)
        with pytest.raises(ConfigurationError, match="needs the secrets"):
            upgrade(engine)  # without the key the homes cannot be sealed: refused, unchanged
        assert current_revision(engine) == "0004"
        with pytest.raises(StoreSecretsMismatchError):  # other secrets would seal for good
            upgrade(engine, "0006_encrypted_homes", cipher=Secrets.generate())
        assert current_revision(engine) == "0004"
        upgrade(engine, "0006_encrypted_homes", cipher=secrets)
        assert current_revision(engine) == "0006_encrypted_homes"
        text = _everything(engine)
        assert "107.6123456" not in text and "6.9123456" not in text and "812.0" not in text
        assert "107.7" in text  # a given point is not a home: kept as it was
        assert "lon" not in {c["name"] for c in sa.inspect(engine).get_columns("subscribers")}

        subscriber = SubscribersRepo(engine, secrets).get("s1")
        assert subscriber is not None and (subscriber.lon, subscriber.lat) == HOME
        report = ReportsRepo(engine, secrets).get("r_home")
        assert report is not None and (report.lon, report.lat) == HOME
        assert report.decision == DECISION  # the full decision, opened
        blind = ReportsRepo(engine).get("r_home")
        assert blind is not None and blind.lon is None and blind.decision["lon"] is None
        replayed = ReportsRepo(engine, secrets).replay("k1", "key", T0)
        assert replayed is not None and (replayed.report.lon, replayed.report.lat) == HOME

        config = alembic_config()  # and back: the plaintext returns with the key
        with engine.begin() as conn:
            config.attributes.update(connection=conn, cipher=secrets)
            command.downgrade(config, "0004")
        with engine.connect() as conn:
            row = conn.execute(sa.select(_old_subscribers.c.lon, _old_subscribers.c.lat)).one()
            decision = conn.execute(
                sa.select(_old_reports.c.decision).where(_old_reports.c.id == "r_home")
            ).scalar_one()
            response = conn.execute(sa.select(_old_keys.c.response)).scalar_one()
        assert tuple(row) == HOME and decision == DECISION
        assert (response["lon"], response["lat"]) == HOME
    finally:
        engine.dispose()


def test_an_empty_store_needs_no_secrets(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0006_encrypted_homes")
        assert current_revision(engine) == "0006_encrypted_homes"
    finally:
        engine.dispose()


def test_the_cli_upgrade_uses_the_configured_secrets(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from geo_router.cli import app

    path = tmp_path / "geo_router.sqlite3"
    secrets = Secrets.generate()
    engine = make_engine(f"sqlite:///{path}")
    try:
        _store_at_0004_with_a_home(engine, secrets)
    finally:
        engine.dispose()
    env = {"GEO_ROUTER_DATA_DIR": str(tmp_path), "GEO_ROUTER_DATABASE_URL": ""}
    refused = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert refused.exit_code == 1 and "needs the secrets" in refused.output
    (tmp_path / "secrets.json").write_text(secrets.to_json(), encoding="utf-8")
    done = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert done.exit_code == 0, done.output
    assert "at revision" in done.stdout
    assert json.dumps(HOME[0]) not in path.read_bytes().decode("latin-1")
