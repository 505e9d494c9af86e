"""store.erasure and SubscriberService.erase: personal fields go, reports stay, on both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from geo_router.errors import InputError, NotFoundError
from geo_router.intake.locate import Locator
from geo_router.intake.reports.models import ReportFilters, ServiceActor
from geo_router.intake.reports.service import ReportService
from geo_router.intake.secrets import Secrets
from geo_router.intake.subscribers.service import SubscriberService
from geo_router.store.erasure import ErasedReports, erase_number, purge_reports
from geo_router.store.reports_repo import ReportsRepo
from geo_router.store.schema import REPORT_PERSONAL_COLUMNS, report_updates, reports, utcnow
from geo_router.store.subscribers_repo import SubscribersRepo

CALL = ServiceActor(id="k-call", name="call", role="intake", channel="call")
SITI = "+6281234567890"
BUDI = "+6281399998888"  # never registered


@pytest.fixture
def world(migrated_engine: Any, demo_router: Any) -> Any:
    """A registry with Siti at home, and intake over the same store and secrets."""
    from types import SimpleNamespace

    secrets = Secrets.generate()
    engine = migrated_engine
    point = demo_router.snapshot.layers["kelurahan"].geometries[0].representative_point()
    registry = SubscriberService(
        SubscribersRepo(engine), ReportsRepo(engine), secrets, lambda: demo_router
    )
    siti = registry.create(
        SITI, name="Siti Rahma", address="Jalan Aceh 12", lon=point.x, lat=point.y
    )
    intake = ReportService(
        ReportsRepo(engine), Locator(SubscribersRepo(engine), None), demo_router, secrets
    )
    return SimpleNamespace(
        engine=engine, secrets=secrets, registry=registry, intake=intake, siti=siti, point=point
    )


def _file(world: Any, phone: str, key: str | None = None, **body: Any) -> Any:
    payload = {
        "category": "waste",
        "reporter_phone": phone,
        "description": "anjing Pak Budi",
        **body,
    }
    return world.intake.create(payload, actor=CALL, idempotency_key=key)


def _everything(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(
            str(value)
            for table in sa.inspect(conn).get_table_names()
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"'))
            for value in row
        )


def test_erase_by_number_leaves_nothing_that_names_it(world: Any) -> None:
    at_home = _file(world, SITI, key="k1")
    elsewhere = _file(world, SITI, location={"lon": world.point.x, "lat": world.point.y})
    other = _file(world, BUDI, location={"lon": world.point.x, "lat": world.point.y})
    world.intake.update_status(at_home.id, "acknowledged", actor=CALL, note="called Siti back")
    siti_hash = world.secrets.hash_phone(SITI)
    assert siti_hash in _everything(world.engine)

    erased = world.registry.erase(phone="0812-3456-7890")

    assert erased.subscriber_id == world.siti.id
    assert erased.reports == ErasedReports(reports=2, idempotency_keys=1)
    assert world.registry.get_by_phone(SITI) is None
    assert world.registry.caller(SITI).registered is False
    assert world.registry.caller(SITI).nuisance.reports_made == 0
    assert siti_hash not in _everything(world.engine)
    assert "called Siti back" not in _everything(world.engine)
    for report_id in (at_home.id, elsewhere.id):  # kept for statistics, without the person
        kept = world.intake.get(report_id, actor=CALL)
        assert kept.category == "waste" and kept.zones == at_home.zones
        assert kept.reporter_phone_hash is None and kept.reporter_phone_enc is None
        assert kept.description is None
    assert world.intake.get(at_home.id, actor=CALL).lon is None  # the home is gone
    assert world.intake.get(elsewhere.id, actor=CALL).lon == world.point.x  # not a home
    kelurahan = at_home.zones["kelurahan"]
    page = world.intake.list(ReportFilters.parse(zone=f"kelurahan:{kelurahan}"), actor=CALL)
    assert page.total == 3
    untouched = world.intake.get(other.id, actor=CALL)
    assert untouched.reporter_phone_hash == world.secrets.hash_phone(BUDI)
    assert untouched.description == "anjing Pak Budi"
    # again: nothing left to erase
    again = world.registry.erase(phone=SITI)
    assert again.subscriber_id is None and again.reports == ErasedReports(0, 0)


def test_erase_by_id_and_an_unregistered_number(world: Any) -> None:
    _file(world, SITI)
    _file(world, BUDI, location={"lon": world.point.x, "lat": world.point.y})
    erased = world.registry.erase(subscriber_id=world.siti.id)
    assert erased.subscriber_id == world.siti.id and erased.reports.reports == 1
    assert world.registry.count() == 0
    with pytest.raises(NotFoundError):
        world.registry.erase(subscriber_id=world.siti.id)
    stranger = world.registry.erase(phone=BUDI)  # a reporter who never registered
    assert stranger.subscriber_id is None and stranger.reports.reports == 1
    assert world.secrets.hash_phone(BUDI) not in _everything(world.engine)
    for bad in ({}, {"subscriber_id": "x", "phone": SITI}):
        with pytest.raises(InputError, match="either"):
            world.registry.erase(**bad)


def test_purge_erases_only_reports_left_alone_long_enough(world: Any) -> None:
    old = _file(world, SITI, key="k-old", media_url="https://x.example/p.jpg")
    new = _file(world, BUDI, location={"lon": world.point.x, "lat": world.point.y})
    cutoff = utcnow() + timedelta(seconds=1)
    with world.engine.begin() as conn:  # the new one changed after the cutoff
        conn.execute(
            reports.update()
            .where(reports.c.id == new.id)
            .values(updated_at=cutoff + timedelta(days=1))
        )
    assert purge_reports(world.engine, before=cutoff) == ErasedReports(1, 1)
    assert purge_reports(world.engine, before=cutoff) == ErasedReports(0, 0)  # idempotent
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(reports).where(reports.c.id == old.id)).one()._mapping
        notes = conn.execute(
            sa.select(report_updates.c.note).where(report_updates.c.report_id == old.id)
        ).scalars()
        assert list(notes) == ["created"]
    assert all(row[name] is None for name in REPORT_PERSONAL_COLUMNS)
    assert row["category"] == "waste" and row["status"] == "open"
    assert world.intake.get(new.id, actor=CALL).description == "anjing Pak Budi"
    # the registry itself is not touched by retention
    assert world.registry.get_by_phone(SITI) is not None


def test_erase_number_without_anything(migrated_engine: Any) -> None:
    erased = erase_number(migrated_engine, "no-such-hash")
    assert erased.subscriber_id is None and erased.reports == ErasedReports(0, 0)
