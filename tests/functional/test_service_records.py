"""Service records in a real database (SQLite, and PostgreSQL when MGR_TEST_DB_URL is set).

Each test runs real supervisors and reads the records with the real `mgr-supervisorctl
services`, as an operator does.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import signal
import sqlite3
import subprocess
import time

import psutil
import pytest

from supervisor.db import api
from tests.functional.conftest import CTL, Supervisor, at_once
from tests.tcpproxy import TcpProxy

FAST_REPORTS = {"report_interval": 1, "service_down_time": 3}
RECORD_MANAGER = "tests.functional.managers.RecordManager"


def services(supervisor: Supervisor, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CTL), "--config-file", str(supervisor.config_file), "services", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def records(supervisor: Supervisor, *args: str) -> list[dict]:
    result = services(supervisor, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def records_once_there(supervisor: Supervisor) -> list[dict]:
    """The records, or none while the first supervisor is still creating the schema."""
    result = services(supervisor, "--json")
    return json.loads(result.stdout) if result.returncode == 0 else []


def states(supervisor: Supervisor, *args: str) -> dict[tuple[str, str, int], str]:
    return {
        (r["host"], r["manager"], r["worker_id"]): r["state"] for r in records(supervisor, *args)
    }


def test_the_record_exists_before_pre_start_hook_and_survives_restarts(supervisor, db_url):
    supervisor.configure(
        {"alpha": {"manager": RECORD_MANAGER, "workers": 2}},
        default={"host": "node-a", **FAST_REPORTS},
        database={"connection": db_url},
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    first = [w for w in supervisor.events() if w[1] == "pre_start_hook-ref"]
    assert all(w[2] != "none" and w[2] == w[3] for w in first), first
    assert [w[2] for w in supervisor.events() if w[1] == "init_host-ref"] == ["none", "none"]

    victim = supervisor.worker_titles()["mgr-supervisor: alpha worker(1)"]
    (victim_row,) = [w[2] for w in first if int(w[0]) == victim]
    psutil.Process(victim).kill()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 3, what="replacement")
    replacement = supervisor.worker_titles()["mgr-supervisor: alpha worker(1)"]
    again = [w for w in supervisor.events() if int(w[0]) == replacement]
    assert ["init_host-ref", victim_row] == again[0][1:3], "init_host gets the existing row"
    assert len(records(supervisor)) == 2, "one row per worker id, never one per pid"


def test_services_shows_records_up_and_a_stop_marks_them_stopped(supervisor, db_url):
    supervisor.configure(
        {"alpha": {"workers": 2}, "beta": {}},
        default={"host": "node-a", **FAST_REPORTS},
        database={"connection": db_url},
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 3, what="3 ready")
    supervisor.wait_for(
        lambda: (
            all(r["report_count"] >= 2 for r in records(supervisor))
            and len(records(supervisor)) == 3
        ),
        what="two reports each",
    )
    rows = records(supervisor)
    assert {(r["manager"], r["worker_id"], r["state"]) for r in rows} == {
        ("alpha", 0, "up"),
        ("alpha", 1, "up"),
        ("beta", 0, "up"),
    }
    assert set(supervisor.worker_titles().values()) == {r["pid"] for r in rows}
    assert all(r["last_seen"].endswith("Z") for r in rows)
    table = services(supervisor).stdout
    assert table.splitlines()[0].split() == [
        "HOST",
        "MANAGER",
        "WORKER",
        "PID",
        "STATE",
        "REPORTS",
        "LAST-SEEN",
    ]
    assert records(supervisor, "--manager", "beta")[0]["manager"] == "beta"

    assert supervisor.stop() == 0
    assert set(states(supervisor).values()) == {"stopped"}


def test_disable_and_enable(supervisor, db_url):
    supervisor.configure(
        {"alpha": {"manager": RECORD_MANAGER, "tick_spacing": 0.2}},
        default={"host": "node-a", **FAST_REPORTS},
        database={"connection": db_url},
    )
    supervisor.start()
    # The record exists before pre_start_hook; watch_service_ref reads it every 0.2 s.
    supervisor.wait_for(lambda: supervisor.count("pre_start_hook") == 1, what="a record")
    result = services(supervisor, "disable", "node-a", "alpha", "--reason", "maintenance")
    assert result.returncode == 0, result.stderr
    supervisor.wait_for(
        lambda: ["service_ref-disabled", "True"] in [w[1:] for w in supervisor.events()],
        what="the manager's service_ref says disabled",
    )
    (row,) = records(supervisor)
    assert (row["state"], row["disabled"], row["disabled_reason"]) == (
        "disabled",
        True,
        "maintenance",
    )
    assert services(supervisor, "enable", "node-a", "alpha").returncode == 0
    assert records(supervisor)[0]["state"] == "up"


def test_delete(supervisor, db_url):
    supervisor.configure(
        {"alpha": {}}, default={"host": "node-a", **FAST_REPORTS}, database={"connection": db_url}
    )
    supervisor.start()
    supervisor.wait_for(lambda: records_once_there(supervisor), what="a record")
    assert supervisor.stop() == 0
    gone, deleted = at_once(
        lambda: services(supervisor, "delete", "node-gone"),
        lambda: services(supervisor, "delete", "node-a"),
    )
    assert (gone.returncode, deleted.returncode) == (1, 0), (gone.stderr, deleted.stderr)
    assert records(supervisor) == []


def test_two_hosts_on_one_database(supervisor, db_url, tmp_path):
    reports = {"report_interval": 1, "service_down_time": 2}
    supervisor.configure(
        {"alpha": {}}, default={"host": "node-a", **reports}, database={"connection": db_url}
    )
    other = Supervisor(tmp_path / "other")
    other.tmp_path.mkdir()
    other.configure(
        {"alpha": {}, "beta": {}},
        default={"host": "node-b", **reports},
        database={"connection": db_url},
    )
    try:
        supervisor.start()
        other.start()
        # Each record exists before its worker's pre_start_hook.
        supervisor.wait_for(lambda: supervisor.count("pre_start_hook") == 1, what="node-a's")
        other.wait_for(lambda: other.count("pre_start_hook") == 2, what="node-b's")
        supervisor.wait_for(
            lambda: set(states(supervisor).values()) == {"up"}, what="both hosts up"
        )
        assert {r["host"] for r in records(supervisor, "--host", "node-b")} == {"node-b"}
        other.workers()
        other.signal(signal.SIGKILL)
        other.wait_exit()
        killed_at = time.monotonic()
        supervisor.wait_for(
            lambda: (
                states(supervisor, "--host", "node-b")
                == {("node-b", "alpha", 0): "down", ("node-b", "beta", 0): "down"}
            ),
            timeout=reports["service_down_time"] + 8,
            what="node-b down",
        )
        assert time.monotonic() - killed_at < reports["service_down_time"] + 8
        assert states(supervisor, "--host", "node-a") == {("node-a", "alpha", 0): "up"}
        assert supervisor.proc.poll() is None
    finally:
        other.kill_everything()
    assert other.leftovers() == []


@pytest.fixture
def proxied_postgres(request) -> tuple[TcpProxy, str]:
    """A PostgreSQL schema of this run, reached through a proxy the test can cut."""
    url = request.getfixturevalue("postgres_database").new_schema_url()
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    request.addfinalizer(proxy.close)
    return proxy, parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )


def test_a_database_outage_is_logged_once_and_survived(supervisor, proxied_postgres):
    proxy, url = proxied_postgres
    supervisor.configure(
        {"alpha": {"workers": 2, "tick_spacing": 0.2}},
        default={"host": "node-a", **FAST_REPORTS},
        database={"connection": url},
    )
    supervisor.start()
    supervisor.wait_for(lambda: len(records_once_there(supervisor)) == 2, what="2 records")
    pids = set(supervisor.worker_titles().values())
    proxy.cut()
    supervisor.wait_for(
        lambda: "the database is unreachable" in supervisor.log(), what="the recorder loses it"
    )
    ticks = supervisor.count("tick")
    time.sleep(1.2)  # a tick every 0.2 s, and more than one report_interval
    assert supervisor.count("tick") > ticks, "periodic tasks go on during the outage"
    assert supervisor.log().count("the database is unreachable") == 1, "logged once per host"
    assert set(supervisor.worker_titles().values()) == pids
    proxy.restore()
    supervisor.wait_for(lambda: "the database is reachable again" in supervisor.log(), what="back")
    assert supervisor.log().count("the database is reachable again") == 1
    before = {r["worker_id"]: r["report_count"] for r in records(supervisor)}
    supervisor.wait_for(
        lambda: all(r["report_count"] > before[r["worker_id"]] for r in records(supervisor)),
        what="reports resumed",
    )


def test_a_start_with_the_database_down_still_starts_the_workers(supervisor, proxied_postgres):
    proxy, url = proxied_postgres
    proxy.cut()
    supervisor.configure(
        {"alpha": {}}, default={"host": "node-a", **FAST_REPORTS}, database={"connection": url}
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 2, what="a worker ticking")
    from tests.functional.conftest import ctl

    supervisor.wait_for(
        lambda: json.loads(ctl(supervisor, "status", "--json").stdout)["database"] == "unreachable",
        what="status says the database is unreachable",
    )
    assert "the database is unreachable" in ctl(supervisor, "status").stdout
    proxy.restore()
    # The recorder makes the schema at its next try (within a second): until then `services`
    # says there is none.
    supervisor.wait_for(
        lambda: (
            [(r["manager"], r["state"]) for r in records_once_there(supervisor)]
            == [("alpha", "up")]
        ),
        what="up",
    )


def refused_start(supervisor: Supervisor, connection: str) -> str:
    """Start with `connection`; the one "config error" line of a refused start."""
    supervisor.configure({"alpha": {"workers": 2}}, database={"connection": connection})
    supervisor.start()
    deadline = time.monotonic() + 20
    while supervisor.proc.poll() is None and time.monotonic() < deadline:
        supervisor.children()  # tracked: the fixture fails the test if one is left
        time.sleep(0.01)
    status = supervisor.wait_exit()
    log = supervisor.log()
    assert status == 78, f"exit status {status}\nlog:\n{log}"
    assert "Traceback" not in log, log
    (line,) = [line for line in log.splitlines() if "config error" in line]
    assert line.startswith("mgr-supervisor: config error: "), line
    assert not supervisor.event_file.exists(), f"a hook ran: {supervisor.events()}"
    return line


def test_a_database_schema_it_does_not_know_refuses_the_start(supervisor, tmp_path):
    """exit 78 and one line, as for any configuration error, before any hook runs.

    The recorder checks the schema after the workers are forked (the parent imports no
    database code); they wait for its answer before `init_host()` and are stopped.
    """
    from tests.dbfixtures import make_conf, sqlite_url

    url = sqlite_url(tmp_path)
    api.configure(make_conf(url))
    try:
        api.ensure_schema()
    finally:
        api.dispose()
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        connection.execute(
            "UPDATE mgr_supervisor_alembic_version SET version_num = '9999_from_the_future'"
        )
    line = refused_start(supervisor, url)
    assert line.startswith("mgr-supervisor: config error: [database] connection:"), line
    assert "9999_from_the_future" in line


def test_a_connection_url_it_cannot_use_refuses_the_start(supervisor):
    """Checked by the recorder, as --check-config does; one line naming the file, never the
    password."""
    from tests.functional.test_bad_config import run_supervisor

    line = refused_start(supervisor, "mysql+mysqldb://user:s3cret@127.0.0.1/x")
    assert line.startswith(
        f"mgr-supervisor: config error: {supervisor.config_file}: [database] connection: "
        "the driver of 'mysql+mysqldb' is not installed"
    ), line
    assert "s3cret" not in supervisor.log()
    check = run_supervisor(
        supervisor.tmp_path, "--config-file", str(supervisor.config_file), "--check-config"
    )
    assert (check.returncode, check.stderr.strip()) == (78, line)


def test_a_hung_worker_is_not_reported_up(supervisor, db_url):
    """From the moment its periodic task is past heartbeat_timeout, no report counts it up,
    though the worker lives on while the supervisor stops it."""
    heartbeat_timeout = 3
    supervisor.configure(
        {
            "alpha": {
                "block_in": "tick",
                "heartbeat_timeout": heartbeat_timeout,
                "restart_backoff_initial": 30,
            }
        },
        default={"host": "node-a", "graceful_shutdown_timeout": 8, **FAST_REPORTS},
        database={"connection": db_url},
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick-blocked") == 1, what="a hung tick")
    hung_since = time.time()
    (pid,) = supervisor.worker_titles().values()
    supervisor.wait_for(lambda: "no heartbeat for" in supervisor.log(), what="judged hung")
    time.sleep(2 * FAST_REPORTS["report_interval"])
    assert psutil.pid_exists(pid), "the hung worker still runs (its stop waits for the task)"
    (row,) = records(supervisor)
    last_seen = datetime.datetime.fromisoformat(row["last_seen"].replace("Z", "+00:00"))
    assert last_seen.timestamp() <= hung_since + heartbeat_timeout + 0.5, (
        f"reported {last_seen.timestamp() - hung_since:.1f}s after it hung"
    )


def test_a_killed_recorder_is_restarted_and_reports_resume(supervisor, db_url):
    supervisor.configure(
        {"alpha": {"workers": 2}},
        default={"host": "node-a", **FAST_REPORTS},
        database={"connection": db_url},
    )
    supervisor.start()
    supervisor.wait_for(
        lambda: {r["state"] for r in records_once_there(supervisor)} == {"up"}, what="2 up"
    )
    workers = set(supervisor.worker_titles().values())
    recorder = supervisor.recorder()
    assert recorder is not None
    recorder.kill()
    supervisor.wait_for(
        lambda: "the service recorder ended with signal SIGKILL; restarting it" in supervisor.log(),
        what="the restart",
    )
    supervisor.wait_for(lambda: supervisor.recorder() is not None, what="a new recorder")
    before = {r["worker_id"]: r["report_count"] for r in records(supervisor)}
    supervisor.wait_for(
        lambda: all(r["report_count"] > before[r["worker_id"]] + 1 for r in records(supervisor)),
        what="reports resumed",
    )
    assert set(supervisor.worker_titles().values()) == workers, "no worker was touched"
    assert supervisor.stop() == 0
    assert set(states(supervisor).values()) == {"stopped"}


def test_a_recorder_signalled_while_it_imports_the_db_code_stops(supervisor):
    """SIGTERM in the recorder's first ~0.2 s, while it imports SQLAlchemy, stops it: run by
    the parent's handler, whose wake-up fd the recorder closed, the signal would be lost, and
    a stop would wait 5 s for the recorder before killing it."""
    supervisor.configure({"alpha": {}})
    supervisor.start()
    found: list[psutil.Process] = []
    supervisor.wait_for(lambda: found.append(supervisor.recorder()) or found[-1], what="it")
    recorder = found[-1]
    recorder.send_signal(signal.SIGTERM)
    try:
        recorder.wait(timeout=10)
    except psutil.TimeoutExpired:
        pytest.fail(f"the recorder ignored SIGTERM\nlog:\n{supervisor.log()[-4000:]}")
    supervisor.wait_for(lambda: supervisor.recorder() not in (None, recorder), what="another")
    assert supervisor.stop() == 0
    assert "still running after" not in supervisor.log()
    assert "signal wakeup fd" not in supervisor.log()


def test_a_host_holds_one_database_connection_whatever_its_workers(supervisor, postgres_database):
    """The recorder's: no worker of a manager that leaves `self.db` alone connects."""
    supervisor.configure(
        {"alpha": {"workers": 6}},
        default={"host": "node-a", **FAST_REPORTS},
        database={"connection": postgres_database.new_schema_url()},
    )
    supervisor.start()
    supervisor.wait_for(
        lambda: [r["report_count"] >= 2 for r in records_once_there(supervisor)] == [True] * 6,
        what="6 records reported twice",
    )
    # A `services` command's own session ends a moment after the command does.
    supervisor.wait_for(lambda: postgres_database.sessions() == 1, what="one session")
    time.sleep(2 * FAST_REPORTS["report_interval"])
    assert postgres_database.sessions() == 1


def test_a_reloaded_heartbeat_timeout_reaches_the_reports_of_kept_workers(supervisor, tmp_path):
    """The worker judges itself with the limits the parent judges it with: after a reload
    turns heartbeat_timeout off, a long periodic task is no hang for either, and the kept
    worker goes on reporting through it (it judged by its limits at fork, and skipped)."""
    database = tmp_path / "records.sqlite"
    sections = {
        "default": {"host": "node-a", **FAST_REPORTS},
        "database": {"connection": f"sqlite:///{database}"},
    }
    alpha = {"heartbeat_timeout": 1, "tick_spacing": 0.2, "label": "first"}
    supervisor.configure({"alpha": alpha}, **sections)
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 2, what="ticking")
    (pid,) = supervisor.worker_titles().values()
    slow = {"heartbeat_timeout": 0, "slow_in": "tick", "slow_seconds": 6, "label": "second"}
    supervisor.configure({"alpha": {**alpha, **slow}}, **sections)
    supervisor.signal(signal.SIGHUP)

    def slow_tick_began() -> bool:
        words = [e[1:] for e in supervisor.events()]
        return (
            ["tick"] in words[words.index(["reset", "second"]) :]
            if ["reset", "second"] in words
            else False
        )

    supervisor.wait_for(slow_tick_began, what="a slow tick after the reset")
    time.sleep(1.5)  # past the old heartbeat_timeout, inside the 6 s tick
    before = report_count(database)
    time.sleep(3)
    assert report_count(database) > before, "no report during a task the parent allows"
    assert supervisor.worker_titles() == {"mgr-supervisor: alpha worker(0)": pid}


def report_count(database) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        (count,) = connection.execute("SELECT report_count FROM services").fetchone()
    return count


def test_a_database_that_refuses_us_is_named_once_not_taken_for_an_outage(
    supervisor, postgres_database
):
    """A database that does not exist (or a login refused) is said in the server's own
    words, once however often the recorder retries, and by `services`; never the URL."""
    missing = f"{postgres_database.name}_missing"
    url = postgres_database.url.set(database=missing).render_as_string(hide_password=False)
    supervisor.configure(
        {"alpha": {}}, default={"host": "node-a", **FAST_REPORTS}, database={"connection": url}
    )
    supervisor.start()
    said = f'the database refused the connection: database "{missing}" does not exist'
    supervisor.wait_for(lambda: said in supervisor.log(), what="the refusal")
    supervisor.wait_for(lambda: supervisor.count("tick") >= 3, what="retries meanwhile")
    assert supervisor.log().count(said) == 1, "once per change, not per retry"
    assert "unreachable" not in supervisor.log()
    result = services(supervisor)
    assert (result.returncode, result.stderr) == (3, f"mgr-supervisorctl: services: {said}\n")
