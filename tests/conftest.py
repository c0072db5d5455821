"""Fixtures for every test: real databases (see tests/dbfixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from oslo_config import cfg

from supervisor.db import api
from tests import dbfixtures


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[dbfixtures.PostgresDatabase]:
    """This test run's own PostgreSQL database, dropped at the end."""
    database = dbfixtures.PostgresDatabase.from_env()
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(params=dbfixtures.BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return dbfixtures.sqlite_url(tmp_path)
    return request.getfixturevalue("postgres_database").new_schema_url()


@pytest.fixture
def db_conf(db_url: str) -> Iterator[cfg.ConfigOpts]:
    """A config whose `[database] connection` is db_url; supervisor.db.api is configured."""
    conf = dbfixtures.make_conf(db_url)
    api.configure(conf)
    try:
        yield conf
    finally:
        api.dispose()
