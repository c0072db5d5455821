"""SIGUSR2: oslo.reports' Guru Meditation Report from the parent and from any worker, each
with its own section, and everything keeps running (doc/source/operations/signals.md)."""

from __future__ import annotations

import os
import signal
import stat
import time

from tests.functional.conftest import render_config

SECRET = "gmr-secret-2c9d41"
TITLE = "====                        Guru Meditation                         ===="
OUR_SECTION = "====                         mgr-supervisor                         ===="


def section_of(text: str, start: str) -> list[str]:
    """The lines of our section that begins with the line `start`, up to the next line that
    is not part of it (a log line, another report)."""
    lines = text.splitlines()
    first = lines.index(start)
    block = []
    for line in lines[first:]:
        if line[:4].isdigit() and line[4:5] == "-" or line.startswith("===="):
            break
        block.append(line)
    return block


def test_sigusr2_reports_from_the_parent_and_a_worker_and_all_keep_running(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "secret": SECRET}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 3, what="3 ready")
    supervisor.wait_for(lambda: "STARTING -> RUNNING" in supervisor.log(), what="RUNNING")
    workers = {
        title.removeprefix("mgr-supervisor: "): pid
        for title, pid in supervisor.worker_titles().items()
    }
    recorder = supervisor.recorder()
    assert recorder is not None

    supervisor.signal(signal.SIGUSR2)
    head = f"mgr-supervisor pid {supervisor.pid}, up "
    supervisor.wait_for(lambda: head in supervisor.log(), what="the parent's report")
    log = supervisor.log()
    assert TITLE in log and OUR_SECTION in log
    table = section_of(log, next(line for line in log.splitlines() if line.startswith(head)))
    for name, pid in workers.items():
        manager, worker_id = name.split(" worker(")
        assert any(line.split()[:2] == [str(pid), f"{manager}({worker_id}"] for line in table), (
            name,
            table,
        )
    assert any(line.split()[:2] == ["alpha", "RUNNING"] for line in table), table

    worker_pid = workers["alpha worker(1)"]
    os.kill(worker_pid, signal.SIGUSR2)
    mark = f"pid: {worker_pid} (supervisor pid {supervisor.pid})"
    supervisor.wait_for(lambda: mark in supervisor.log(), what="the worker's report")
    log = supervisor.log()
    section = section_of(log, "manager: alpha (tests.functional.managers.EventManager)")
    assert section[:3] == [
        "manager: alpha (tests.functional.managers.EventManager)",
        "worker id: 1",
        mark,
    ], section
    assert section[3].startswith("phase: ") and section[4] == "ready: yes", section

    recorder.send_signal(signal.SIGUSR2)  # no report there, and no harm
    ticks = supervisor.count("tick")
    supervisor.wait_for(lambda: supervisor.count("tick") >= ticks + 3, what="ticking on")
    assert supervisor.worker_titles() == {f"mgr-supervisor: {n}": p for n, p in workers.items()}
    assert supervisor.recorder().pid == recorder.pid
    assert supervisor.count("post_start_hook") == 3
    assert supervisor.stop() == 0
    log = supervisor.log()
    assert log.count(TITLE) == 2
    assert "secret = ***" in log  # the reports' config: masked, not left out
    assert SECRET not in log


def test_reports_go_to_private_files_in_the_oslo_reports_log_dir(supervisor, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    text = render_config(supervisor.event_file, {"alpha": {}}, state_path=supervisor.state_path)
    supervisor.config_file.write_text(text + f"[oslo_reports]\nlog_dir = {reports}\n")
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    (worker_pid,) = supervisor.worker_titles().values()

    def files(prefix: str) -> list[str]:
        return sorted(name for name in os.listdir(reports) if name.startswith(prefix))

    for count in (1, 2):  # two in the same second are two files
        supervisor.signal(signal.SIGUSR2)
        supervisor.wait_for(
            lambda c=count: len(files("mgr-supervisor_gurumeditation_")) == c, what="reports"
        )
    os.kill(worker_pid, signal.SIGUSR2)
    supervisor.wait_for(lambda: files("mgr-supervisor-alpha-0_gurumeditation_"), what="report")
    time.sleep(0.5)  # written in one go, then logged
    assert supervisor.stop() == 0

    parent = [reports / name for name in files("mgr-supervisor_gurumeditation_")]
    (worker,) = [reports / name for name in files("mgr-supervisor-alpha-0_gurumeditation_")]
    for path in [*parent, worker]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert f"Guru Meditation Report written to {path}" in supervisor.log()
    assert all(f"mgr-supervisor pid {supervisor.pid}" in p.read_text() for p in parent)
    assert f"pid: {worker_pid} (supervisor pid {supervisor.pid})" in worker.read_text()
    assert TITLE not in supervisor.log()


def test_a_manager_that_sets_up_oslo_reports_gets_its_section_in_one_report(supervisor):
    from tests.functional import gmr_manager

    supervisor.configure({"alpha": {"manager": "tests.functional.gmr_manager.GmrManager"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    (worker_pid,) = supervisor.worker_titles().values()
    os.kill(worker_pid, signal.SIGUSR2)
    mark = f"pid: {worker_pid} (supervisor pid {supervisor.pid})"
    supervisor.wait_for(lambda: mark in supervisor.log(), what="the worker's report")
    time.sleep(1)  # a second report, if the manager's handler ran too, would be out by now
    ticks = supervisor.count("tick")
    supervisor.wait_for(lambda: supervisor.count("tick") > ticks, what="ticking on")
    assert supervisor.stop() == 0
    log = supervisor.log()
    assert log.count(TITLE) == 1
    assert gmr_manager.SECTION in log
    assert f"own section of pid {worker_pid}" in log
    assert supervisor.count("post_start_hook") == 1


def test_a_stopping_parent_still_reports_what_it_waits_for(supervisor):
    supervisor.configure({"alpha": {"block_in": "cleanup_host"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    (worker_pid,) = supervisor.worker_titles().values()
    supervisor.signal(signal.SIGTERM)
    supervisor.wait_for(lambda: supervisor.count("cleanup_host-blocked"), what="a stuck stop")
    supervisor.signal(signal.SIGUSR2)
    head = f"mgr-supervisor pid {supervisor.pid}, up "
    supervisor.wait_for(lambda: head in supervisor.log(), what="the parent's report")
    log = supervisor.log()
    table = section_of(log, next(line for line in log.splitlines() if line.startswith(head)))
    assert any(line.split()[:2] == ["alpha", "STOPPING"] for line in table), table
    assert any(line.split()[:2] == [str(worker_pid), "alpha(0)"] for line in table), table
    # graceful_shutdown_timeout (5 s) ends it: the worker is killed, the parent exits 0.
    assert supervisor.wait_exit(timeout=20) == 0


def test_a_manager_that_sets_up_oslo_reports_added_by_a_reload_does_not_take_sigusr2(
    supervisor,
):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    # gmr_manager is imported by the parent only now, and calls setup_autorun() as it is.
    supervisor.configure(
        {"alpha": {}, "beta": {"manager": "tests.functional.gmr_manager.GmrManager"}}
    )
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="beta ready")
    supervisor.signal(signal.SIGUSR2)
    head = f"mgr-supervisor pid {supervisor.pid}, up "
    supervisor.wait_for(lambda: head in supervisor.log(), what="the parent's own report")
    time.sleep(1)  # a second report, if the manager's handler ran too, would be out by now
    assert supervisor.proc.poll() is None
    assert supervisor.stop() == 0
    assert supervisor.log().count(TITLE) == 1
