"""Bulk import of historic reports: routed in chunks, flagged, stored, listed back."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from geo_router.errors import InputError
from geo_router.intake.locate import Locator
from geo_router.intake.reports.importer import import_reports
from geo_router.intake.reports.models import ReportFilters, ServiceActor
from geo_router.intake.reports.service import ReportService
from geo_router.intake.secrets import Secrets
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.subscribers_repo import SubscribersRepo

ADMIN = ServiceActor(id="k-admin", name="admin key", role="admin")


@pytest.fixture(scope="module")
def city(demo_router: Any) -> Any:
    return demo_router


@pytest.fixture
def engine(migrated_engine: Any) -> Any:
    return migrated_engine


def _demo_csv(path: Path, city: Any, n: int = 400) -> Path:
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = city.snapshot.coverage_bounds
    lon = rng.uniform(minx, maxx, n).round(6).astype(object)
    lat = rng.uniform(miny, maxy, n).round(6).astype(object)
    lon[0], lat[0] = "", ""  # missing
    lon[1], lat[1] = "abc", "-6.9"  # not a number
    lon[2], lat[2] = 0.0, 0.0  # outside
    cats = np.array(["Sampah", "fire", "noise", "Graffiti"], dtype=object)[np.arange(n) % 4]
    created = ["2025-12-31 23:30:00"] * n
    created[3] = "not a date"
    lines = ["x,y,jenis,waktu,keterangan"]
    lines += [f"{lon[i]},{lat[i]},{cats[i]},{created[i]},laporan {i}" for i in range(n)]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_import_reports_demo(engine: Any, city: Any, tmp_path: Path) -> None:
    source = _demo_csv(tmp_path / "history.csv.gz", city)
    summary = import_reports(
        source,
        city,
        ReportsRepo(engine),
        lon_field="x",
        lat_field="y",
        category_field="jenis",
        created_field="waktu",
        category_map={"Sampah": "waste"},
        description_field="keterangan",
        timezone="Asia/Jakarta",
        chunk_size=150,
    )
    assert summary.rows == summary.stored == 400
    assert summary.invalid_coordinates == 2
    assert summary.unknown_category == 100
    assert summary.unknown_categories == {"Graffiti": 100}
    assert summary.invalid_created_date == 1
    assert summary.outside_coverage >= 1
    assert summary.rows_per_s > 0
    locator = Locator(SubscribersRepo(engine), None)
    service = ReportService(ReportsRepo(engine), locator, city, Secrets.generate())
    page = service.list(ReportFilters.parse(limit=500), actor=ADMIN)
    assert page.total == 400
    by_desc = {r.description: r for r in page.items}
    assert "invalid_coordinates" in by_desc["laporan 0"].flags
    assert by_desc["laporan 0"].lon is None
    assert "outside_coverage" in by_desc["laporan 2"].flags
    assert "invalid_created_date" in by_desc["laporan 3"].flags
    assert by_desc["laporan 4"].category == "waste"
    assert by_desc["laporan 7"].category == "Graffiti"
    assert "unknown_category" in by_desc["laporan 7"].flags
    assert summary.outside_coverage == sum("outside_coverage" in r.flags for r in page.items)
    sample = next(r for r in page.items if r.category == "fire" and "kelurahan" in r.zones)
    assert sample.status == "closed"
    assert sample.created_at == datetime(2025, 12, 31, 16, 30, tzinfo=UTC)  # WIB is UTC+7
    expected = city.route(sample.lon, sample.lat)
    assert sample.zones == {n: m.zone_id for n, m in expected.zones.items() if m.zone_id}
    assert sample.decision["agency"] == city.category("fire").agency
    kel = sample.zones["kelurahan"]
    in_kel = service.list(ReportFilters.parse(zone=f"kelurahan:{kel}", limit=500), actor=ADMIN)
    assert sample.id in {r.id for r in in_kel.items}


def test_import_names_a_missing_column(engine: Any, city: Any, tmp_path: Path) -> None:
    source = _demo_csv(tmp_path / "h.csv.gz", city, n=10)
    with pytest.raises(InputError, match=r"no column .lng.*--lon-field"):
        import_reports(
            source,
            city,
            ReportsRepo(engine),
            lon_field="lng",
            lat_field="y",
            category_field="jenis",
            created_field="waktu",
        )
