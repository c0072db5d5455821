"""Logs per manager (doc/source/operations/logs.md): whose line it is, in text and JSON; a
manager's own log file; a request id per periodic run and per reset; the config at DEBUG with
secrets masked."""

from __future__ import annotations

import json
import re
import signal
import subprocess

from tests.functional.conftest import SCRIPT, TESTS_DIR, render_config

DB_PASSWORD = "db-pw-9f3a1c"
RPC_PASSWORD = "rpc-pw-51be7d"
OPTION_SECRET = "opt-secret-77e2"
REQUEST_ID = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def text_lines_by_pid(text: str) -> dict[int, list[str]]:
    """oslo.log text lines (`date time pid ...`), grouped by pid."""
    lines: dict[int, list[str]] = {}
    for line in text.splitlines():
        words = line.split(" ", 3)
        if len(words) == 4 and words[2].isdigit():
            lines.setdefault(int(words[2]), []).append(words[3])
    return lines


def worker_pids(supervisor) -> dict[str, int]:
    """{"alpha worker(0)": pid, ...}, from the workers' process titles."""
    return {
        title.removeprefix("mgr-supervisor: "): pid
        for title, pid in supervisor.worker_titles().items()
    }


def test_text_lines_name_the_manager_and_worker_id(supervisor):
    supervisor.configure({"alpha": {"workers": 2}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 3, what="3 workers ticking")
    workers = worker_pids(supervisor)
    assert sorted(workers) == ["alpha worker(0)", "alpha worker(1)", "beta worker(0)"]
    assert supervisor.stop() == 0

    by_pid = text_lines_by_pid(supervisor.log())
    for name, pid in workers.items():
        assert by_pid.get(pid), f"{name} logged nothing\n{supervisor.log()[-3000:]}"
        # The process's name follows the pid on every line, before the level.
        assert all(line.startswith(f"{name} ") for line in by_pid[pid]), by_pid[pid]
    assert all(line.startswith("master ") for line in by_pid[supervisor.pid])
    assert "manager alpha: tests.functional.managers.EventManager, 2 worker(s)" in supervisor.log()


def test_json_lines_carry_manager_and_worker_id_fields(supervisor):
    supervisor.configure({"alpha": {"workers": 2}, "beta": {}}, default={"use_json": "true"})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 3, what="3 workers ticking")
    workers = worker_pids(supervisor)
    assert supervisor.stop() == 0

    records = [json.loads(line) for line in supervisor.log().splitlines() if line.startswith("{")]
    assert records, supervisor.log()[-3000:]
    for name, pid in workers.items():
        manager, worker_id = re.fullmatch(r"(\w+) worker\((\d+)\)", name).groups()
        own = [r for r in records if r["process"] == pid]
        assert own, f"{name} logged nothing"
        for record in own:
            assert record["extra"]["manager"] == manager, record
            assert record["extra"]["worker_id"] == int(worker_id), record
            assert record["process_name"] == name, record
    parent = [r for r in records if r["process"] == supervisor.pid]
    assert parent and all(r["process_name"] == "master" for r in parent)
    assert all("manager" not in r["extra"] for r in parent)


def test_a_managers_log_file_takes_its_workers_lines(supervisor, tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    supervisor.configure(
        {"alpha": {"log_file": "alpha.log"}, "beta": {}},
        default={"log_dir": log_dir, "log_file": "main.log", "use_stderr": "false"},
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 2, what="2 workers ticking")
    workers = worker_pids(supervisor)
    assert supervisor.stop() == 0

    main = text_lines_by_pid((log_dir / "main.log").read_text())
    alpha = text_lines_by_pid((log_dir / "alpha.log").read_text())
    assert workers["alpha worker(0)"] in alpha
    assert workers["alpha worker(0)"] not in main
    assert workers["beta worker(0)"] in main
    assert workers["beta worker(0)"] not in alpha
    assert set(alpha) == {workers["alpha worker(0)"]}  # the parent's lines stay in main.log
    assert any("manager alpha:" in line for line in main[supervisor.pid])
    assert any("alpha worker(0): ready" in line for line in alpha[workers["alpha worker(0)"]])


def test_a_log_file_that_cannot_be_written_is_a_config_error(tmp_path):
    config = tmp_path / "mgr-supervisor.conf"
    missing = tmp_path / "no-such-dir" / "alpha.log"
    config.write_text(render_config(tmp_path / "events", {"alpha": {"log_file": missing}}))
    result = subprocess.run(
        [str(SCRIPT), "--config-file", str(config), "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(TESTS_DIR.parent), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert result.returncode == 78, result
    assert result.stderr.strip().splitlines() == [
        f"mgr-supervisor: config error: {config}: [manager:alpha] log_file: cannot write "
        f"{missing}: directory {missing.parent} does not exist"
    ]


def test_each_periodic_run_and_each_reset_has_its_own_request_id(supervisor):
    supervisor.configure({"alpha": {}}, default={"debug": "true"})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 3, what="3 ticks")
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 1, what="a reset")
    supervisor.wait_for(lambda: "alpha worker(0): reset()" in supervisor.log(), what="reset line")
    assert supervisor.stop() == 0

    runs, resets = [], []
    for line in supervisor.log().splitlines():
        if "alpha worker(0): periodic_tasks()" in line or "alpha worker(0): reset()" in line:
            ids = REQUEST_ID.findall(line)
            assert len(ids) == 1, line
            (runs if "periodic_tasks()" in line else resets).append(ids[0])
        if "Running periodic task EventManager.tick" in line:
            # What runs within a run logs with that run's id.
            assert REQUEST_ID.findall(line) == runs[-1:], line
    assert len(runs) >= 3 and len(set(runs)) == len(runs), runs
    assert len(resets) == 1 and resets[0] not in runs


def test_debug_logs_the_config_with_every_secret_masked(supervisor):
    supervisor.configure(
        {"alpha": {"secret": OPTION_SECRET}},
        default={
            "debug": "true",
            "transport_url": f"rabbit://guest:{RPC_PASSWORD}@127.0.0.1:1/",
        },
        database={"connection": f"postgresql+psycopg://mgr:{DB_PASSWORD}@127.0.0.1:1/mgr"},
    )
    supervisor.start()
    # Nothing listens on port 1: the recorder and the worker's RPC client say so, and must
    # not say the password while at it.
    supervisor.wait_for(lambda: supervisor.count("init_host"), timeout=30, what="init_host")
    supervisor.wait_for(
        lambda: "the database is unreachable" in supervisor.log(), timeout=30, what="db down"
    )
    supervisor.wait_for(lambda: supervisor.count("pre_start_hook"), timeout=30, what="pre_start")
    supervisor.wait_for(
        lambda: "impl_rabbit [-] Connection failed:" in supervisor.log(),
        timeout=30,
        what="the broker down",
    )
    assert supervisor.stop(timeout=30) == 0
    log = supervisor.log()
    # At DEBUG, oslo.log ends each line with where it was logged.
    dump = [line for line in log.splitlines() if " supervisor.logs " in line]
    assert any(re.search(r"database\.connection\s+= \*\*\*\*( |$)", line) for line in dump), dump
    assert any(re.search(r" transport_url\s+= \*\*\*\*( |$)", line) for line in dump), dump
    assert any(re.search(r"manager:alpha\.secret\s+= \*\*\*\*( |$)", line) for line in dump), dump
    assert any(re.search(r"manager:alpha\.workers\s+= 1( |$)", line) for line in dump), dump
    for secret in (DB_PASSWORD, RPC_PASSWORD, OPTION_SECRET):
        assert secret not in log, f"{secret} leaked:\n" + "\n".join(
            line for line in log.splitlines() if secret in line
        )


def test_without_debug_the_config_is_not_logged(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick"), what="a tick")
    assert supervisor.stop() == 0
    assert " supervisor.logs " not in supervisor.log()


def test_a_managers_log_file_is_reopened_after_logrotate_moves_it(supervisor, tmp_path):
    log = tmp_path / "alpha.log"
    supervisor.configure({"alpha": {"log_file": log}}, default={"debug": "true"})
    supervisor.start()
    supervisor.wait_for(lambda: log.exists() and "periodic_tasks()" in log.read_text(), what="log")
    log.rename(tmp_path / "alpha.log.1")  # what logrotate does, without copytruncate
    # The worker's next periodic run logs into a new file of that name (WatchedFileHandler).
    supervisor.wait_for(
        lambda: log.exists() and "periodic_tasks()" in log.read_text(), what="a new file"
    )
    assert supervisor.stop() == 0
    assert "alpha worker(0): cleanup_host()" in log.read_text()
