"""The store: engines, migrations on SQLite and PostgreSQL, metadata agreement, the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from geo_router.errors import ConfigurationError
from geo_router.settings import StoreSettings
from geo_router.store import Store, current_revision, make_engine, upgrade
from geo_router.store.city_record import recorded_city
from geo_router.store.database import MIGRATIONS_DIR, alembic_config, head_revision
from geo_router.store.schema import UTCDateTime, api_keys, metadata, subscribers

OWN_TABLES = {"api_keys", "subscribers"}


def _columns(engine: sa.Engine, table: str) -> dict[str, bool]:
    return {c["name"]: c["nullable"] for c in sa.inspect(engine).get_columns(table)}


def test_upgrade_creates_tables_at_head(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        names = set(sa.inspect(engine).get_table_names())
        assert names >= OWN_TABLES
        upgrade(engine)  # idempotent: nothing left to do
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_metadata_matches_migrated_database(database_url: str) -> None:
    """Like ``alembic check``, restricted to the tables this module owns."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        for table in (api_keys, subscribers):
            assert _columns(engine, table.name) == {c.name: c.nullable for c in table.columns}

        def own_name(name: str | None, type_: str, _parents: object) -> bool:
            # Filter by name before reflection: other modules' tables are not ours to check.
            return type_ != "table" or name in OWN_TABLES

        def own_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
            table = obj if type_ == "table" else getattr(obj, "table", None)
            return getattr(table, "name", None) in OWN_TABLES

        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": own_name,
                    "include_object": own_object,
                },
            )
            diff = compare_metadata(context, metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert not OWN_TABLES & set(sa.inspect(engine).get_table_names())
        upgrade(engine)
        assert set(sa.inspect(engine).get_table_names()) >= OWN_TABLES
    finally:
        engine.dispose()


def test_store_open_embedded_default(tmp_path: Path) -> None:
    settings = StoreSettings(data_dir=tmp_path / "nested" / "data", database_url=None)
    with Store.open(settings) as store:
        assert store.dialect == "sqlite"
        assert store.ping()
        assert isinstance(store.keys.count_active(), int)
    assert settings.sqlite_path.is_file()


def test_store_open_without_migrating(tmp_path: Path) -> None:
    with Store.open(StoreSettings(data_dir=tmp_path), migrate=False) as store:
        assert current_revision(store.engine) is None


def test_sqlite_pragmas_on_every_connection(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'db.sqlite3'}")
    try:
        for _ in range(2):
            with engine.connect() as conn:
                pragma = {
                    name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
                }
            assert pragma["journal_mode"] == "wal"
            assert pragma["synchronous"] == 2  # FULL
            assert pragma["foreign_keys"] == 1
            assert pragma["busy_timeout"] >= 1000
    finally:
        engine.dispose()


def test_sqlite_ddl_is_transactional(tmp_path: Path) -> None:
    """A failed migration leaves nothing behind (pysqlite alone would commit the DDL)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("SELECT * FROM no_such_table")
        assert "t" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_postgres_url_uses_psycopg3() -> None:
    engine = make_engine("postgresql://user@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_database_urls(url: str) -> None:
    with pytest.raises(ConfigurationError, match="GEO_ROUTER_DATABASE_URL"):
        make_engine(url)


def test_ping_false_when_database_unreachable() -> None:
    store = Store(make_engine("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"))
    assert store.ping() is False
    store.close()


def test_postgres_runs_in_the_url_schema(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    schema = database_url.split("search_path%3D")[1].split(",")[0]
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        assert set(sa.inspect(engine).get_table_names(schema=schema)) >= OWN_TABLES
        assert not OWN_TABLES & set(sa.inspect(engine).get_table_names(schema="public"))
    finally:
        engine.dispose()


def test_utc_datetime_round_trip_and_refuses_naive(database_url: str) -> None:
    engine = make_engine(database_url)
    table = sa.Table("t_when", sa.MetaData(), sa.Column("when", UTCDateTime()))
    try:
        table.create(engine)
        aware = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(table.insert().values(when=aware))
            assert conn.execute(sa.select(table.c.when)).scalar_one() == aware
            with pytest.raises(sa.exc.StatementError, match="naive"):
                conn.execute(table.insert().values(when=datetime(2024, 5, 1)))
    finally:
        engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    assert MIGRATIONS_DIR.is_relative_to(Path(__file__).resolve().parent.parent / "geo_router")
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert any((MIGRATIONS_DIR / "versions").glob("0001_*.py"))


def test_cli_db_upgrade(tmp_path: Path) -> None:
    from geo_router.cli import app

    env = {"GEO_ROUTER_DATA_DIR": str(tmp_path), "GEO_ROUTER_DATABASE_URL": ""}
    result = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert f"at revision {head_revision()}" in result.stdout
    assert (tmp_path / "geo_router.sqlite3").is_file()
    # which store: on stderr, so stdout stays the one result line
    assert result.stderr.splitlines() == [f"store: {(tmp_path / 'geo_router.sqlite3').resolve()}"]
    assert "store:" not in result.stdout
    engine = make_engine(f"sqlite:///{tmp_path / 'geo_router.sqlite3'}")
    try:
        assert recorded_city(engine) is None  # migrations name no city
    finally:
        engine.dispose()


def test_cli_db_upgrade_hides_the_password(tmp_path: Path) -> None:
    from geo_router.cli import app

    url = "postgresql://alice:s3cret@127.0.0.1:1/none?connect_timeout=1"
    env = {"GEO_ROUTER_DATA_DIR": str(tmp_path), "GEO_ROUTER_DATABASE_URL": url}
    result = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code != 0  # nothing listens there
    assert (
        result.stderr.splitlines()[0]
        == "store: postgresql://alice:***@127.0.0.1:1/none?connect_timeout=1"
    )
    assert "s3cret" not in result.output


def test_cli_db_upgrade_bad_url(tmp_path: Path) -> None:
    from geo_router.cli import app

    env = {"GEO_ROUTER_DATA_DIR": str(tmp_path), "GEO_ROUTER_DATABASE_URL": "mysql://x@y/z"}
    result = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 1


def test_sqlite_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Issue 10, Medium 10: the database, its -wal and -shm are 0600 (they were 0644)."""
    import os

    path = tmp_path / "new" / "geo_router.sqlite3"
    previous = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        with engine.connect() as conn:  # keeps -wal and -shm in place while we look
            conn.execute(sa.select(subscribers)).all()
            modes = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir() if p.is_file()}
        engine.dispose()
    finally:
        os.umask(previous)
    assert set(modes) >= {path.name, path.name + "-wal", path.name + "-shm"}
    assert set(modes.values()) == {0o600}, modes
    assert path.parent.stat().st_mode & 0o777 == 0o700

    path.chmod(0o644)  # a database made by an older version
    make_engine(f"sqlite:///{path}").dispose()
    assert path.stat().st_mode & 0o777 == 0o600


def test_migration_0005_goes_down_and_up(database_url: str) -> None:
    """Down to 0004 drops ``store_meta``, up brings it back (its columns match the schema:
    ``test_metadata_matches_migrated_database``)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        assert "store_meta" in sa.inspect(engine).get_table_names()
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0004")
        assert "store_meta" not in sa.inspect(engine).get_table_names()
        upgrade(engine)
        assert "store_meta" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
