"""alembic's environment for the mgr-supervisor schema.

`supervisor.db.api` runs it programmatically (no alembic.ini): it hands over an open
connection, already in a transaction, in `config.attributes["connection"]`. The whole
upgrade runs in that one transaction (PostgreSQL and SQLite have transactional DDL), under a
lock so that supervisors on several hosts creating an empty database at once do it once:
`pg_advisory_xact_lock` on PostgreSQL, `BEGIN IMMEDIATE` (taken by the api) on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from supervisor.db import ADVISORY_LOCK_KEY, VERSION_TABLE, models

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=models.Base.metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """`--sql` mode: print the DDL for the URL's dialect."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = sa.create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connection)


def _run(connection: sa.Connection) -> None:
    # Batch mode: SQLite's ALTER TABLE cannot drop or change columns; alembic copies instead.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
