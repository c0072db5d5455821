"""supervisor.db.api and mgr-supervisor-manage on real databases: SQLite and PostgreSQL.

Every test that takes `db_conf` or `db_url` runs once per backend (see tests/dbfixtures.py).
"""

from __future__ import annotations

import datetime
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from oslo_utils import timeutils

from supervisor import db
from supervisor.db import api, models
from supervisor.db import schema as db_schema
from tests import dbfixtures
from tests.ports import free_port

MANAGE = Path(sys.executable).with_name("mgr-supervisor-manage")
ROOT = Path(__file__).resolve().parents[2]


def engine_for(url: str) -> sa.Engine:
    """A plain engine of our own, to look at the database from outside the api."""
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def tables(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def close_to_now(value: datetime.datetime, seconds: float = 5.0) -> bool:
    return value.tzinfo is None and abs((timeutils.utcnow() - value).total_seconds()) < seconds


# --- schema -------------------------------------------------------------------------------


def test_ensure_schema_creates_an_empty_database(db_conf, db_url):
    assert api.schema_version() is None
    assert db_schema.head_version() == "0002"
    api.ensure_schema()
    assert api.schema_version() == db_schema.head_version()
    # The service records only: a manager's own tables are its own db driver's.
    assert tables(db_url) == {"services", db.VERSION_TABLE}


def test_ensure_schema_at_head_changes_nothing(db_conf):
    api.ensure_schema()
    row = start_one("h", "alpha", 0, 1)
    api.ensure_schema()
    assert api.service_get("h", "alpha", 0)["id"] == row["id"]


def test_the_migrated_schema_is_the_models(db_conf, db_url):
    api.sync()
    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={"compare_type": True, "compare_server_default": True},
            )
            diff = compare_metadata(context, models.Base.metadata)
    finally:
        engine.dispose()
    # The version table is alembic's, not a model.
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == db.VERSION_TABLE)]
    assert diff == []


def upgrade_to(url: str, revision: str) -> None:
    """Migrate the database at `url` to `revision` of the shipped migrations (as a release
    that shipped no later one would have)."""
    from alembic import command

    config = db_schema._alembic_config()
    engine = engine_for(url)
    try:
        with db_schema.write_connection(engine) as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def test_a_database_made_by_0001_upgrades_and_keeps_its_records(db_conf, db_url, tmp_path):
    upgrade_to(db_url, "0001")
    engine = engine_for(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO services (host, topic, worker_id, pid) VALUES ('h', 'alpha', 0, 7)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO host_resources (host, sampled_at, cpu_count) "
                    "VALUES ('h', '2025-01-01 12:00:00', 4)"
                )
            )
    finally:
        engine.dispose()
    assert api.schema_version() == "0001"
    with pytest.raises(db_schema.SchemaTooOld, match="needs 0002"):
        api.ensure_schema()

    conf = dbfixtures.write_config(tmp_path / "mgr.conf", db_url, state_path=tmp_path)
    out = manage("--config-file", str(conf), "db", "sync", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout == "mgr-supervisor-manage: db sync: the schema was upgraded from 0001 to 0002\n"
    )
    assert api.schema_version() == "0002"
    assert tables(db_url) == {"services", db.VERSION_TABLE}, "0002 drops host_resources"
    row = api.service_get("h", "alpha", 0)
    assert (row["manager"], row["pid"]) == ("alpha", 7), "the records are kept"
    api.sync()  # at head: nothing to do
    assert api.schema_version() == "0002"


@pytest.fixture
def migrations_with_0003(tmp_path, monkeypatch):
    """The shipped migrations plus a 0003 that adds a column: the database at 0002 is old."""
    directory = tmp_path / "migrations"
    shutil.copytree(
        db_schema.MIGRATIONS_DIR, directory, ignore=shutil.ignore_patterns("__pycache__")
    )
    (directory / "versions" / "0003_test.py").write_text(
        "import sqlalchemy as sa\n"
        "from alembic import op\n"
        "revision = '0003'\n"
        "down_revision = '0002'\n"
        "branch_labels = None\n"
        "depends_on = None\n"
        "def upgrade():\n"
        "    with op.batch_alter_table('services') as batch:\n"
        "        batch.add_column(sa.Column('forced_down', sa.Boolean, nullable=True))\n"
    )
    monkeypatch.setattr(db_schema, "MIGRATIONS_DIR", directory)


def test_ensure_schema_refuses_an_older_schema_and_db_sync_upgrades_it(db_conf, db_url, request):
    api.ensure_schema()  # at 0002, the shipped head
    start_one("h", "alpha", 0, 1)
    request.getfixturevalue("migrations_with_0003")

    with pytest.raises(db_schema.SchemaTooOld) as err:
        api.ensure_schema()
    message = str(err.value)
    assert "revision 0002" in message and "needs 0003" in message
    assert "`mgr-supervisor-manage db sync`" in message
    assert "\n" not in message

    api.sync()
    assert api.schema_version() == "0003"
    api.ensure_schema()
    engine = engine_for(db_url)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("services")}
    finally:
        engine.dispose()
    assert "forced_down" in columns
    assert api.service_get("h", "alpha", 0)["pid"] == 1, "the upgrade kept the rows"


def test_an_unknown_revision_is_too_new(db_conf, db_url):
    api.ensure_schema()
    engine = engine_for(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {db.VERSION_TABLE} SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(
        db_schema.SchemaTooNew, match="revision 9999, unknown to this mgr-supervisor"
    ):
        api.ensure_schema()
    with pytest.raises(db_schema.SchemaTooNew):
        api.sync()
    assert api.schema_version() == "9999", "nothing was changed"


def test_supervisors_starting_at_once_create_an_empty_database_once(db_conf):
    api.dispose()
    errors = dbfixtures.run_in_children(6, lambda i: api.ensure_schema())
    assert errors == [None] * 6
    assert api.schema_version() == db_schema.head_version()


# --- services -----------------------------------------------------------------------------


@pytest.fixture
def schema(db_conf):
    api.ensure_schema()
    return db_conf


def start_one(host: str, manager: str, worker_id: int, pid: int):
    return api.services_start(host, {(manager, worker_id): pid})[(manager, worker_id)]


def report_one(service_id: int):
    return api.services_report({service_id: 1}).get(service_id)


def test_a_batch_starts_reports_and_stops_many_workers_at_once(schema):
    keys = {("alpha", 0): 10, ("alpha", 1): 11, ("beta", 0): 12}
    rows = api.services_start("node-1", keys)
    assert {key: row["pid"] for key, row in rows.items()} == keys
    assert api.services_get("node-1", [("alpha", 1), ("beta", 7)]).keys() == {("alpha", 1)}
    assert api.services_get("node-2", keys) == {}
    ids = {key: row["id"] for key, row in rows.items()}
    reported = api.services_report({ids["alpha", 0]: 3, ids["alpha", 1]: 1})
    assert {row["report_count"] for row in reported.values()} == {3, 1}
    assert reported[ids["alpha", 0]]["report_count"] == 3
    # A stop names the pid that stopped: a newer worker with the row already is not stopped.
    api.services_mark_stopped({ids["alpha", 0]: 10, ids["alpha", 1]: 999})
    after = api.services_get("node-1", keys)
    assert (after["alpha", 0]["stopped"], after["alpha", 1]["stopped"]) == (True, False)
    again = api.services_start("node-1", {("alpha", 0): 20})
    assert again["alpha", 0]["stopped"] is False and again["alpha", 0]["report_count"] == 3


def test_services_start_keeps_one_row_per_worker(schema):
    assert api.service_get("node-1", "alpha", 0) is None
    row = start_one("node-1", "alpha", 0, 4242)
    assert row["host"] == "node-1" and row["manager"] == "alpha" and row["worker_id"] == 0
    assert row["binary"] == models.BINARY == "mgr-supervisor"
    assert (row["pid"], row["report_count"], row["disabled"], row["stopped"]) == (
        4242,
        0,
        False,
        False,
    )
    assert close_to_now(row["created_at"]) and close_to_now(row["last_seen_up"])

    report_one(row["id"])
    api.service_set_disabled("node-1", "alpha", True, "maintenance")
    api.services_mark_stopped({row["id"]: 4242})
    again = start_one("node-1", "alpha", 0, 4343)
    assert again["id"] == row["id"]
    assert again["pid"] == 4343 and again["stopped"] is False
    assert again["report_count"] == 1, "restarts keep the count"
    assert (again["disabled"], again["disabled_reason"]) == (True, "maintenance")
    assert again["created_at"] == row["created_at"]
    assert again["updated_at"] is not None and again["updated_at"] >= row["created_at"]
    assert len(api.service_get_all()) == 1


def test_rows_behave_like_dicts(schema):
    row = start_one("node-1", "alpha", 3, 77)
    assert row["worker_id"] == 3
    assert row.get("pid") == 77 and row.get("nope", "default") == "default"
    values = dict(row.items())
    assert values["host"] == "node-1" and values["disabled_reason"] is None
    assert {
        "id",
        "host",
        "binary",
        "manager",
        "worker_id",
        "pid",
        "report_count",
        "disabled",
        "disabled_reason",
        "stopped",
        "created_at",
        "updated_at",
        "last_seen_up",
    } <= set(values)
    assert api.service_get("node-1", "alpha", 3)["pid"] == 77


def test_services_report_counts_and_sets_last_seen_up(schema):
    row = start_one("node-1", "alpha", 0, 1)
    before = timeutils.utcnow()
    for expected in (1, 2, 3):
        row = report_one(row["id"])
        assert row["report_count"] == expected
    assert before <= row["last_seen_up"] <= timeutils.utcnow()
    assert row["last_seen_up"].tzinfo is None
    assert api.service_get("node-1", "alpha", 0)["report_count"] == 3


def test_services_report_leaves_out_a_deleted_row(schema):
    row = start_one("node-1", "alpha", 0, 1)
    assert api.service_delete("node-1") == 1
    assert report_one(row["id"]) is None


def test_reports_from_many_processes_are_never_lost(schema):
    row = start_one("node-1", "alpha", 0, 1)
    api.dispose()  # as the supervisor does before it forks
    processes, reports = 8, 25

    def report(i: int) -> None:
        for _ in range(reports):
            report_one(row["id"])

    assert dbfixtures.run_in_children(processes, report) == [None] * processes
    assert api.service_get("node-1", "alpha", 0)["report_count"] == processes * reports


def test_workers_registering_at_once_get_one_row_each(schema):
    api.dispose()

    def register(i: int) -> None:
        # Every process writes every record: the same keys race each other.
        for worker_id in range(4):
            start_one("node-1", "alpha", worker_id, os.getpid())

    assert dbfixtures.run_in_children(6, register) == [None] * 6
    rows = api.service_get_all()
    assert [r["worker_id"] for r in rows] == [0, 1, 2, 3]


def test_a_child_that_inherits_the_engine_leaves_the_parents_connections_alone(schema):
    row = start_one("node-1", "alpha", 0, 1)  # a pooled connection here
    # No dispose(): the child inherits the engine and its pooled connection.
    assert dbfixtures.run_in_children(2, lambda i: report_one(row["id"])) == [None] * 2
    # The parent's pooled connection still works (a child closing it would break it).
    assert report_one(row["id"])["report_count"] == 3


def test_services_mark_stopped(schema):
    row = start_one("node-1", "alpha", 0, 1)
    assert api.services_mark_stopped({row["id"]: 1}) == 1
    stopped = api.service_get("node-1", "alpha", 0)
    assert stopped["stopped"] is True and stopped["pid"] == 1
    assert api.service_state(stopped, 60) == "stopped"


def test_service_get_all_orders_and_filters(schema):
    for host, manager, worker_id in [
        ("node-2", "beta", 0),
        ("node-1", "beta", 1),
        ("node-1", "alpha", 1),
        ("node-1", "beta", 0),
        ("node-2", "alpha", 0),
        ("node-1", "alpha", 0),
    ]:
        start_one(host, manager, worker_id, 1)
    keys = [(r["host"], r["manager"], r["worker_id"]) for r in api.service_get_all()]
    assert keys == sorted(keys)
    assert len(keys) == 6
    assert [(r["manager"], r["worker_id"]) for r in api.service_get_all(host="node-1")] == [
        ("alpha", 0),
        ("alpha", 1),
        ("beta", 0),
        ("beta", 1),
    ]
    assert [r["host"] for r in api.service_get_all(manager="alpha")] == [
        "node-1",
        "node-1",
        "node-2",
    ]
    assert len(api.service_get_all(host="node-2", manager="beta")) == 1
    assert api.service_get_all(host="node-3") == []


def test_service_set_disabled_and_enabled(schema):
    for worker_id in range(3):
        start_one("node-1", "alpha", worker_id, 1)
    start_one("node-1", "beta", 0, 1)
    assert api.service_set_disabled("node-1", "alpha", True, "disk replacement") == 3
    rows = api.service_get_all(manager="alpha")
    assert all(r["disabled"] and r["disabled_reason"] == "disk replacement" for r in rows)
    assert api.service_state(rows[0], 60) == "disabled"
    assert api.service_get("node-1", "beta", 0)["disabled"] is False
    assert api.service_set_disabled("node-1", "alpha", False) == 3
    rows = api.service_get_all(manager="alpha")
    assert not any(r["disabled"] or r["disabled_reason"] for r in rows), "enable clears it"
    assert api.service_set_disabled("node-9", "alpha", True) == 0


def test_service_delete(schema):
    for host, manager in [("node-1", "alpha"), ("node-1", "beta"), ("node-2", "alpha")]:
        start_one(host, manager, 0, 1)
        start_one(host, manager, 1, 1)
    assert api.service_delete("node-1", "beta") == 2
    assert api.service_delete("node-2") == 2
    assert api.service_delete("node-2") == 0
    assert [(r["host"], r["manager"]) for r in api.service_get_all()] == [
        ("node-1", "alpha"),
        ("node-1", "alpha"),
    ]


def test_service_state():
    now = datetime.datetime(2025, 1, 1, 12, 0, 0)

    def row(**values):
        return {"stopped": False, "disabled": False, "last_seen_up": now, **values}

    assert api.service_state(row(), 60, now) == "up"
    assert (
        api.service_state(row(last_seen_up=now - datetime.timedelta(seconds=60)), 60, now) == "up"
    )
    assert (
        api.service_state(row(last_seen_up=now - datetime.timedelta(seconds=61)), 60, now) == "down"
    )
    # Another host's clock a little ahead of ours: still up, as nova says.
    assert api.service_state(row(last_seen_up=now + datetime.timedelta(seconds=5)), 60, now) == "up"
    assert api.service_state(row(last_seen_up=None), 60, now) == "down"
    assert api.service_state(row(disabled=True), 60, now) == "disabled"
    assert api.service_state(row(stopped=True, disabled=True), 60, now) == "stopped"
    fresh = row(last_seen_up=timeutils.utcnow())
    assert api.service_state(fresh, 60) == "up", "now defaults to utcnow()"


def test_service_state_of_a_real_row_goes_down(schema):
    row = report_one(start_one("node-1", "alpha", 0, 1)["id"])
    assert api.service_state(row, 60) == "up"
    later = row["last_seen_up"] + datetime.timedelta(seconds=61)
    assert api.service_state(row, 60, now=later) == "down"


# --- engines, processes, failures ---------------------------------------------------------


def test_dispose_then_use_again(schema):
    row = start_one("node-1", "alpha", 0, 1)
    api.dispose()
    api.dispose()
    assert report_one(row["id"])["report_count"] == 1


def test_configure_again_switches_database(schema, tmp_path):
    start_one("node-1", "alpha", 0, 1)
    other = dbfixtures.make_conf(dbfixtures.sqlite_url(tmp_path / "other"))
    (tmp_path / "other").mkdir()
    api.configure(other)
    assert api.schema_version() is None
    api.configure(schema)
    assert len(api.service_get_all()) == 1


def test_a_process_that_did_not_configure_it_uses_cfg_conf(tmp_path):
    """A manager's first `self.db` call in a worker: the api reads the global config."""
    url = dbfixtures.sqlite_url(tmp_path)
    code = (
        "import sys\nfrom oslo_config import cfg\nfrom supervisor.db import api\n"
        "api.register_opts(cfg.CONF)\ncfg.CONF([], project='x', default_config_files=[])\n"
        "cfg.CONF.set_override('connection', sys.argv[1], 'database')\n"
        "api.ensure_schema()\nprint(api.schema_version())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.stdout.strip() == db_schema.head_version(), out.stderr


def test_creating_the_schema_leaves_alembic_out_of_the_process(db_url):
    """The recorder creates an empty database's schema in a child: alembic and the
    migrations are never in its heap (checked in a fresh process, as the recorder is)."""
    code = (
        "import sys\nfrom supervisor.db import api\nfrom tests import dbfixtures\n"
        "api.configure(dbfixtures.make_conf(sys.argv[1]))\napi.ensure_schema_once()\n"
        "print(api.schema_version(), 'alembic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, db_url], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.stdout.split() == [db_schema.head_version(), "False"], out.stderr
    assert tables(db_url) == {"services", db.VERSION_TABLE}


def unreachable_url(db_url: str, tmp_path: Path) -> str:
    url = sa.engine.make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return dbfixtures.sqlite_url(tmp_path / "missing-directory")
    return url.set(port=free_port()).render_as_string(hide_password=False)


def test_an_unreachable_database_raises_dbconnectionerror_quickly(db_url, tmp_path):
    api.configure(dbfixtures.make_conf(unreachable_url(db_url, tmp_path)))
    try:
        dbfixtures.assert_each_fails_fast(
            [
                lambda: api.service_get_all(),
                lambda: start_one("h", "t", 0, 1),
                lambda: report_one(1),
                lambda: api.services_mark_stopped({1: 1}),
                api.schema_version,
                api.ensure_schema,
            ]
        )
    finally:
        api.dispose()


def test_sqlite_runs_in_wal_mode_and_waits_for_a_lock(tmp_path):
    url = dbfixtures.sqlite_url(tmp_path)
    api.configure(dbfixtures.make_conf(url))
    try:
        api.ensure_schema()
        row = start_one("node-1", "alpha", 0, 1)
        path = url[len("sqlite:///") :]
        other = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock ...
        timer = threading.Timer(1.0, lambda: other.execute("COMMIT"))  # ... for a second
        timer.start()
        started = time.monotonic()
        assert report_one(row["id"])["report_count"] == 1  # waits, no "locked"
        assert time.monotonic() - started >= 0.9
        timer.join()
        other.close()
    finally:
        api.dispose()


def test_the_sqlite_files_are_private(tmp_path):
    url = dbfixtures.sqlite_url(tmp_path)
    api.configure(dbfixtures.make_conf(url))
    try:
        api.ensure_schema()
        with api.writer() as session:  # the -wal and -shm files exist while it is open
            session.execute(sa.select(models.Service)).all()
            modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
    finally:
        api.dispose()
    assert modes == {
        "mgr-supervisor.sqlite": "0o600",
        "mgr-supervisor.sqlite-wal": "0o600",
        "mgr-supervisor.sqlite-shm": "0o600",
    }


def test_a_write_transaction_holds_the_sqlite_write_lock_from_its_start(tmp_path):
    """Read-then-write in one transaction must not fail with SQLITE_BUSY under contention."""
    url = dbfixtures.sqlite_url(tmp_path)
    api.configure(dbfixtures.make_conf(url))
    try:
        api.ensure_schema()
        with api.writer() as session:
            session.execute(sa.select(models.Service)).all()  # a read first
            other = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None, timeout=0)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
    finally:
        api.dispose()


@pytest.fixture
def postgresql_url(postgres_database):
    url = postgres_database.new_schema_url()
    api.configure(dbfixtures.make_conf(url))
    yield url
    api.dispose()


def test_a_postgresql_connection_killed_by_the_server_is_replaced(postgresql_url):
    db_url = postgresql_url
    api.ensure_schema()
    row = start_one("node-1", "alpha", 0, 1)  # leaves a pooled connection
    engine = engine_for(db_url)
    try:
        with engine.begin() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'mgr-supervisor' AND datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            ).all()
    finally:
        engine.dispose()
    assert killed, "the api's pooled connection was found"
    assert report_one(row["id"])["report_count"] == 1


def test_connection_url_checks_and_adds_postgresql_parameters():
    url = db_schema.connection_url("postgresql+psycopg://u:pw@db.example:5432/x?connect_timeout=9")
    parsed = sa.engine.make_url(url)
    assert parsed.password == "pw"
    assert parsed.query["connect_timeout"] == "9", "the operator's own value wins"
    assert parsed.query["keepalives"] == "1" and parsed.query["application_name"]
    assert db_schema.connection_url("sqlite:////x/y.sqlite") == "sqlite:////x/y.sqlite"
    for bad, message in [
        ("", "no database connection URL"),
        ("s3cret-not-a-url", "not a database URL"),
        ("nosuch://u:s3cret@h/x", "unknown database dialect or driver 'nosuch'"),
        ("postgresql+nosuch://u:s3cret@h/x", "unknown database dialect or driver"),
    ]:
        with pytest.raises(db_schema.InvalidConnection, match=message) as err:
            db_schema.connection_url(bad)
        assert "s3cret" not in str(err.value)


def test_a_missing_driver_is_named_without_the_url():
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("mysqlclient is installed here")
    with pytest.raises(
        db_schema.InvalidConnection, match="driver of 'mysql\\+mysqldb' is not installed"
    ):
        db_schema.connection_url("mysql+mysqldb://u:s3cret@h/x")


# --- mgr-supervisor-manage ----------------------------------------------------------------


def manage(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MANAGE), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def test_manage_db_version_and_sync(db_url, tmp_path):
    conf = dbfixtures.write_config(tmp_path / "mgr.conf", db_url, state_path=tmp_path)
    out = manage("--config-file", str(conf), "db", "version", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, "current: none\nhead: 0002\n", "")
    out = manage("--config-file", str(conf), "db", "sync", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout == "mgr-supervisor-manage: db sync: the schema was upgraded from none to 0002\n"
    )
    out = manage("--config-file", str(conf), "db", "sync", cwd=tmp_path)
    assert out.stdout == "mgr-supervisor-manage: db sync: the schema is already at 0002 (head)\n"
    out = manage("--config-file", str(conf), "db", "version", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "current: 0002\nhead: 0002\n")
    assert "services" in tables(db_url)


def test_manage_with_an_unreachable_database_says_so_in_one_line(db_url, tmp_path):
    url = unreachable_url(db_url, tmp_path)
    conf = dbfixtures.write_config(tmp_path / "mgr.conf", url, state_path=tmp_path)
    out = manage("--config-file", str(conf), "db", "sync", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith("mgr-supervisor-manage: db sync: cannot reach the database: ")
    assert out.stderr.count("\n") == 1, out.stderr


def test_manage_config_errors_exit_78_without_the_secret(tmp_path):
    cases = [
        ("[database]\nconnection = s3cret\n", "[database] connection: not a database URL"),
        ("[database]\nmax_pool_size = many\n", "[database] max_pool_size: invalid value 'many'"),
        (
            "[DEFAULT]\nreport_interval = 30\nservice_down_time = 30\n",
            "[DEFAULT] service_down_time: 30 must be greater than report_interval (30)",
        ),
    ]
    for text, expected in cases:
        conf = tmp_path / "bad.conf"
        conf.write_text(text)
        out = manage("--config-file", str(conf), "db", "sync", cwd=tmp_path)
        assert out.returncode == 78, out.stderr
        assert out.stderr == f"mgr-supervisor-manage: config error: {conf}: {expected}\n" or (
            out.stderr.startswith(f"mgr-supervisor-manage: config error: {conf}: {expected}")
            and out.stderr.count("\n") == 1
        ), out.stderr
        assert "s3cret" not in out.stderr
    out = manage("--config-file", str(tmp_path / "nope.conf"), "db", "sync", cwd=tmp_path)
    assert out.returncode == 78 and "config file not found" in out.stderr
    out = manage("db", cwd=tmp_path)
    assert out.returncode == 2


def test_python_m_supervisor_manage(tmp_path):
    conf = dbfixtures.write_config(
        tmp_path / "mgr.conf", dbfixtures.sqlite_url(tmp_path), state_path=tmp_path
    )
    out = subprocess.run(
        [sys.executable, "-m", "supervisor.manage", "--config-file", str(conf), "db", "version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert (out.returncode, out.stdout) == (0, "current: none\nhead: 0002\n"), out.stderr
