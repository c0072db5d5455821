"""workers.resources_db, the resources manager's db driver, on real databases.

Every test runs once per backend, SQLite and PostgreSQL (see tests/dbfixtures.py); `db_conf`
configures `supervisor.db.api`, whose engine this driver shares.
"""

from __future__ import annotations

import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from oslo_db import exception as db_exc

from supervisor import db
from supervisor.db import api
from tests import dbfixtures
from tests.unit.test_db_api import close_to_now, engine_for, tables, unreachable_url
from workers import resources_db


@pytest.fixture
def samples(db_conf):
    """An empty database with the api configured; this driver's table not made yet."""
    resources_db._table_on = None
    yield db_conf
    resources_db._table_on = None


# --- its table ----------------------------------------------------------------------------


def test_the_first_call_creates_the_table_beside_the_service_records(samples, db_url):
    assert resources_db.host_resources_get("node-1") is None
    assert tables(db_url) == {resources_db.TABLE}
    api.ensure_schema()  # the supervisor's schema leaves it alone, and it stays
    assert tables(db_url) == {resources_db.TABLE, "services", db.VERSION_TABLE}
    resources_db.host_resources_add("node-1", {"cpu_count": 2})
    assert resources_db.host_resources_get("node-1")["cpu_count"] == 2


def test_the_created_table_is_the_model(samples, db_url):
    resources_db.ensure_table()
    resources_db.ensure_table()  # idempotent
    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, resources_db.Base.metadata) == []
    finally:
        engine.dispose()


def test_workers_creating_the_table_at_once_all_go_on(samples):
    api.dispose()  # as the supervisor does before it forks

    def sample(i: int) -> None:
        resources_db.host_resources_add(f"node-{i}", {"cpu_count": i})

    assert dbfixtures.run_in_children(6, sample) == [None] * 6
    assert [resources_db.host_resources_get(f"node-{i}")["cpu_count"] for i in range(6)] == list(
        range(6)
    )


def test_a_table_dropped_meanwhile_is_made_again(samples, db_url):
    resources_db.host_resources_add("node-1", {"cpu_count": 2})
    engine = engine_for(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {resources_db.TABLE}"))
    finally:
        engine.dispose()
    with pytest.raises(db_exc.DBError):
        resources_db.host_resources_add("node-1", {"cpu_count": 3})
    resources_db.host_resources_add("node-1", {"cpu_count": 4})
    assert resources_db.host_resources_get("node-1")["cpu_count"] == 4


# --- samples ------------------------------------------------------------------------------


def test_host_resources_latest_sample(samples):
    assert resources_db.host_resources_get("node-1") is None
    t0 = datetime.datetime(2025, 1, 1, 12, 0, 0)
    disks = [{"mount": "/", "total": 100 * 2**30, "used": 40 * 2**30}]
    resources_db.host_resources_add(
        "node-1",
        {
            "sampled_at": t0,
            "driver": "psutil",
            "cpu_count": 8,
            "load_1": 0.5,
            "load_5": 0.25,
            "load_15": 0.125,
            "memory_total": 64 * 2**30,  # > 2**31: BigInteger
            "memory_available": 40 * 2**30,
            "disks": disks,
        },
    )
    resources_db.host_resources_add(
        "node-1", {"sampled_at": t0 + datetime.timedelta(seconds=60), "cpu_count": 16}
    )
    resources_db.host_resources_add("node-2", {"cpu_count": 2})
    latest = resources_db.host_resources_get("node-1")
    assert latest["cpu_count"] == 16 and latest["sampled_at"] == t0 + datetime.timedelta(seconds=60)
    assert latest.disk_list() == []
    node2 = resources_db.host_resources_get("node-2")
    assert close_to_now(node2["sampled_at"]), "sampled_at defaults to now"


def test_host_resources_round_trip_and_pruning(samples, db_url):
    t0 = datetime.datetime(2025, 1, 1, 12, 0, 0)
    disks = [
        {"mount": "/", "total": 2**40, "used": 2**39},
        {"mount": "/var", "total": 1, "used": 0},
    ]
    for i in range(5):
        resources_db.host_resources_add(
            "node-1",
            {
                "sampled_at": t0 + datetime.timedelta(seconds=i),
                "memory_total": 64 * 2**30,
                "disks": disks,
            },
            keep=3,
        )
    row = resources_db.host_resources_get("node-1")
    assert row["memory_total"] == 64 * 2**30
    assert row.disk_list() == disks
    assert dict(row.items())["host"] == "node-1"
    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            kept = conn.execute(
                sa.text(f"SELECT sampled_at FROM {resources_db.TABLE} ORDER BY sampled_at")
            ).scalars()
            kept = [
                v if isinstance(v, datetime.datetime) else datetime.datetime.fromisoformat(v)
                for v in kept
            ]
    finally:
        engine.dispose()
    assert kept == [t0 + datetime.timedelta(seconds=i) for i in (2, 3, 4)]


def test_host_resources_rejects_unknown_fields(samples):
    with pytest.raises(ValueError, match="unknown host resources fields: load_60"):
        resources_db.host_resources_add("node-1", {"load_60": 1.0})


def test_an_unreachable_database_raises_dbconnectionerror_quickly(db_url, tmp_path):
    api.configure(dbfixtures.make_conf(unreachable_url(db_url, tmp_path)))
    resources_db._table_on = None
    try:
        dbfixtures.assert_each_fails_fast(
            [
                lambda: resources_db.host_resources_add("h", {}),
                lambda: resources_db.host_resources_get("h"),
            ]
        )
    finally:
        api.dispose()
        resources_db._table_on = None
