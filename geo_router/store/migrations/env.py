"""Alembic environment: run by ``geo_router.store.database.upgrade`` (no alembic.ini).

The caller passes an open connection in ``config.attributes["connection"]``; SQLite gets batch
mode (ALTER TABLE by copy), PostgreSQL runs in the schema its search_path names.
"""

from __future__ import annotations

from alembic import context

from geo_router.store.schema import metadata

config = context.config


def run_offline() -> None:
    """Emit SQL for the URL in the config instead of running it."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on the connection ``upgrade()`` handed over."""
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through geo_router.store.database.upgrade()")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
