"""geo-router reports import: the demo city and the real NYC 311 sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import copy_of_demo_city
from typer.testing import CliRunner

from geo_router.cli import app
from geo_router.store import make_engine
from geo_router.store.city_record import recorded_city
from geo_router.store.schema import report_zones, reports

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedded SQLite store in tmp_path (no GEO_ROUTER_DATABASE_URL)."""
    folder = tmp_path / "data"
    monkeypatch.setenv("GEO_ROUTER_DATA_DIR", str(folder))
    monkeypatch.delenv("GEO_ROUTER_DATABASE_URL", raising=False)
    monkeypatch.delenv("GEO_ROUTER_CITY", raising=False)
    return folder


def _engine(data_dir: Path) -> sa.Engine:
    return make_engine(f"sqlite:///{data_dir / 'geo_router.sqlite3'}")


def _summary(output: str) -> dict[str, Any]:
    return json.loads(output[output.index("{") :])  # type: ignore[no-any-return]


def test_import_demo_city(data_dir: Path, tmp_path: Path, demo_profile_path: Path) -> None:
    source = tmp_path / "laporan.csv"
    source.write_text(
        "bujur,lintang,jenis,dibuat\n"
        "107.6400,-6.8490,waste,2026-01-05 10:00:00\n"
        "107.6100,-6.9000,Sampah,2026-01-05T11:00:00+07:00\n"
        ",,fire,2026-01-05 12:00:00\n"
        "-6.85,107.64,noise,2026-01-05 13:00:00\n"
    )
    cmap = tmp_path / "map.json"
    cmap.write_text(json.dumps({"Sampah": "waste"}))
    result = runner.invoke(
        app,
        [
            "reports",
            "import",
            str(source),
            "--lon-field",
            "bujur",
            "--lat-field",
            "lintang",
            "--category-field",
            "jenis",
            "--created-field",
            "dibuat",
            "--city",
            str(demo_profile_path),
            "--category-map",
            str(cmap),
            "--timezone",
            "Asia/Jakarta",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = _summary(result.output)
    assert summary["rows"] == summary["stored"] == 4
    assert summary["invalid_coordinates"] == 2  # empty, and lat 107 (swapped)
    assert summary["unknown_category"] == 0
    assert summary["rows_per_s"] > 0
    engine = _engine(data_dir)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(reports.c.category, reports.c.channel, reports.c.flags)).all()
    engine.dispose()
    assert sorted(r.category for r in rows) == ["fire", "noise", "waste", "waste"]
    assert {r.channel for r in rows} == {"import"}
    flags = {r.category: r.flags for r in rows}
    assert "possible_axis_swap" in flags["noise"] and "invalid_coordinates" in flags["noise"]


def test_import_errors_are_one_line(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    source.write_text("a,b\n1,2\n")
    result = runner.invoke(
        app,
        [
            *("reports", "import", str(source), "--lon-field", "lon", "--lat-field", "b"),
            *("--category-field", "a", "--created-field", "a"),
        ],
    )
    assert result.exit_code == 2
    assert "no column 'lon'" in result.output
    assert "Traceback" not in result.output


def _import(source: Path, city: Path) -> Any:
    return runner.invoke(
        app,
        [
            *("reports", "import", str(source), "--city", str(city)),
            *("--lon-field", "lon", "--lat-field", "lat"),
            *("--category-field", "category", "--created-field", "created"),
        ],
    )


def test_import_says_which_store_and_keeps_to_its_city(
    data_dir: Path, tmp_path: Path, demo_profile_path: Path
) -> None:
    source = tmp_path / "r.csv"
    source.write_text("lon,lat,category,created\n107.64,-6.849,waste,2026-01-05 10:00:00\n")
    store = str((data_dir / "geo_router.sqlite3").resolve())

    first = _import(source, demo_profile_path)
    assert first.exit_code == 0, first.output
    assert first.stderr.splitlines() == [f"store: {store}"]
    assert _summary(first.stdout)["stored"] == 1  # stdout: the JSON summary alone
    engine = _engine(data_dir)
    try:
        record = recorded_city(engine)
        assert record is not None and record.name == "Kota Contoh"
        assert _import(source, demo_profile_path).exit_code == 0  # the same city again

        other = _import(source, copy_of_demo_city(tmp_path / "other"))
        assert other.exit_code == 2
        assert other.stderr.splitlines() == [
            f"store: {store}",
            f"error: this store ({store}) was created for the city 'Kota Contoh'; refusing to "
            "serve 'Kota Lain' from it. Choose another data dir (GEO_ROUTER_DATA_DIR) or "
            "database (GEO_ROUTER_DATABASE_URL) for 'Kota Lain'.",
        ]
        assert other.stdout == "" and "Traceback" not in other.output
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(reports)).scalar_one()
        assert stored == 2  # nothing imported for the other city
    finally:
        engine.dispose()


NYC_PROFILE = """
name = "New York City"
phone_region = "US"

[[layers]]
name = "community_district"
path = "{data}/nyc_community_districts/community_districts_2020.geojson"
id_field = "boro_cd"
repair = true

[[facilities]]
type = "fire_station"
path = "{data}/nyc_firehouses/FDNY_Firehouse_Listing.csv"
id_field = "FacilityName"
name_field = "FacilityName"
lon_field = "Longitude"
lat_field = "Latitude"

[[categories]]
code = "noise"
name = "Noise"
agency = "NYPD"

[[categories]]
code = "heat"
name = "Heat / hot water"
agency = "HPD"

[[categories]]
code = "parking"
name = "Illegal parking"
agency = "NYPD"
"""


@pytest.mark.slow
@pytest.mark.realdata
def test_import_nyc_311_sample(data_dir: Path, tmp_path: Path, shared_data: Path) -> None:
    profile = tmp_path / "nyc.toml"
    profile.write_text(NYC_PROFILE.format(data=shared_data))
    cmap = tmp_path / "nyc_map.json"
    cmap.write_text(
        json.dumps(
            {
                "Noise - Residential": "noise",
                "Noise - Street/Sidewalk": "noise",
                "HEAT/HOT WATER": "heat",
                "Illegal Parking": "parking",
            }
        )
    )
    source = shared_data / "nyc_311_sample" / "nyc311_sample.csv.gz"
    result = runner.invoke(
        app,
        [
            *("reports", "import", str(source), "--city", str(profile)),
            *("--lon-field", "longitude", "--lat-field", "latitude"),
            *("--category-field", "complaint_type", "--created-field", "created_date"),
            *("--description-field", "unique_key", "--timezone", "America/New_York"),
            *("--category-map", str(cmap), "--chunk-size", "3000"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = _summary(result.output)
    assert summary["rows"] == summary["stored"] == 8313
    assert summary["invalid_coordinates"] == 137  # SOURCE.md: 137 rows have no coordinates
    assert summary["invalid_created_date"] == 0
    assert 0 < summary["unknown_category"] < 8313 - 1283 - 885 - 974
    print(f"NYC 311 import: {summary['rows_per_s']} rows/s")

    # The stored community district agrees with the city's own label as well as plain
    # point-in-polygon does (SOURCE.md: 98.82 % strict).
    labels = pd.read_csv(source, usecols=["unique_key", "label_borocd"], dtype=str)
    labels = labels.dropna()
    labels["label"] = labels["label_borocd"].str.replace(".0", "", regex=False)
    engine = _engine(data_dir)
    query = sa.select(reports.c.description, report_zones.c.zone_id).join(
        report_zones, report_zones.c.report_id == reports.c.id
    )
    with engine.connect() as conn:
        stored = pd.DataFrame(conn.execute(query).all(), columns=["unique_key", "zone"])
        noise = conn.execute(
            sa.select(sa.func.count()).select_from(reports).where(reports.c.category == "noise")
        ).scalar_one()
    engine.dispose()
    assert noise == 1283 + 592
    joined = labels.merge(stored, on="unique_key")
    agreement = float((joined["label"] == joined["zone"]).mean())
    assert len(joined) > 8000
    assert agreement >= 0.985, agreement


def _stored_reports(data_dir: Path, demo_router: Any, when: Any) -> Any:
    """Two reports from a registered caller's number, filed at ``when``; the registry."""
    from geo_router.intake.locate import Locator
    from geo_router.intake.reports.models import ServiceActor
    from geo_router.intake.reports.service import ReportService
    from geo_router.intake.secrets import write_new_secrets_file
    from geo_router.intake.subscribers.service import SubscriberService
    from geo_router.store import Store
    from geo_router.store.reports_repo import ReportsRepo
    from geo_router.store.subscribers_repo import SubscribersRepo

    secrets = write_new_secrets_file(data_dir / "secrets.json")
    store = Store.from_url(f"sqlite:///{data_dir / 'geo_router.sqlite3'}")
    engine = store.engine
    point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
    registry = SubscriberService(
        SubscribersRepo(engine), ReportsRepo(engine), secrets, lambda: demo_router
    )
    registry.create("0812-3456-7890", lon=point.x, lat=point.y)
    intake = ReportService(
        ReportsRepo(engine),
        Locator(SubscribersRepo(engine), None),
        demo_router,
        secrets,
        clock=lambda: when,
    )
    actor = ServiceActor(id="k", name="call", role="intake", channel="call")
    for _ in range(2):
        body = {"category": "waste", "reporter_phone": "0812-3456-7890", "description": "Siti"}
        intake.create(body, actor=actor)
    store.close()
    return registry


def test_purge_erases_old_personal_fields_once(data_dir: Path, demo_router: Any) -> None:
    from datetime import UTC, datetime

    _stored_reports(data_dir, demo_router, datetime(2020, 1, 1, tzinfo=UTC))
    kept = runner.invoke(app, ["reports", "purge", "--days", "0"])
    assert kept.exit_code == 0, kept.output
    assert _summary(kept.stdout)["reports_erased"] == 0
    first = runner.invoke(app, ["reports", "purge"])  # default retention: 365 days
    assert first.exit_code == 0, first.output
    summary = _summary(first.stdout)
    assert summary["retention_days"] == 365 and summary["reports_erased"] == 2
    assert _summary(runner.invoke(app, ["reports", "purge"]).stdout)["reports_erased"] == 0
    engine = _engine(data_dir)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(reports)).all()
    finally:
        engine.dispose()
    assert len(rows) == 2
    assert all(r.reporter_phone_hash is None and r.description is None for r in rows)
    assert all(r.home_enc is None and r.category == "waste" for r in rows)


def test_purge_keeps_recent_reports(
    data_dir: Path, demo_router: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geo_router.store.schema import utcnow

    _stored_reports(data_dir, demo_router, utcnow())
    monkeypatch.setenv("GEO_ROUTER_REPORT_RETENTION_DAYS", "30")
    done = runner.invoke(app, ["reports", "purge"])
    assert done.exit_code == 0, done.output
    assert _summary(done.stdout)["retention_days"] == 30
    assert _summary(done.stdout)["reports_erased"] == 0
