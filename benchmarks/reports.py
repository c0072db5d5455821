"""Issue 10: what reporting the service records costs, and whether a report is ever lost.

    python benchmarks/reports.py [--workers 256] [--seconds 60] [--db-url URL]

Starts mgr-supervisor with N workers of `workers.demo.DemoManager` (a greeting once an hour,
periodic_interval_max 60, report_interval 10, service_down_time 60) in a temporary
state_path, its records in SQLite there, or with --db-url (postgresql+psycopg://...) in a
PostgreSQL database of its own, created for the run and dropped after it. Once
`mgr-supervisorctl status --json` shows every manager RUNNING, it reads the records
(`services --json`), measures the CPU of the supervisor parent, of its service recorder
and of the workers over --seconds
(psutil `cpu_times`, 10 ms ticks, and schedstat, ns), reads the records again and checks
that none lost a report: each record's report_count must be within ±1 of its count at the
first reading plus the seconds between the readings / report_interval. Then SIGTERM; every
process the run started is gone before it exits (killed by pid otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import procs, targets
from benchmarks.targets import CACHE, REPO, ScratchDatabase

REPORT_INTERVAL = 10
SERVICE_DOWN_TIME = 60
READY_TIMEOUT = 180.0
CTL_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
SETTLE_SECONDS = 2.0  # after every worker is ready, before the first reading
HOST = "reports-bench"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    return procs.run_harness(lambda: _measure_reports(args))


def _measure_reports(args: argparse.Namespace) -> int:
    targets.compile_sources()
    database = ScratchDatabase(args.db_url) if args.db_url else None
    try:
        if database is not None:
            database.create()
        with tempfile.TemporaryDirectory(prefix="mgr-reports-") as tmp:
            figures = run(Path(tmp), args.workers, args.seconds, database)
    finally:
        procs.kill_leftovers()  # before the drop: no session may hold the database
        if database is not None:
            database.drop()
    from benchmarks.run import describe_machine

    print(describe_machine())
    print(render(figures))
    return 0 if figures["ok"] else 1


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument(
        "--db-url",
        help="PostgreSQL URL to create the run's database through "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); default SQLite",
    )
    return parser.parse_args(argv)


def write_config(tmp: Path, workers: int, database: ScratchDatabase | None) -> Path:
    config = tmp / "mgr-supervisor.conf"
    text = textwrap.dedent(
        f"""\
        [DEFAULT]
        host = {HOST}
        use_stderr = true
        state_path = {tmp}/state
        report_interval = {REPORT_INTERVAL}
        service_down_time = {SERVICE_DOWN_TIME}
        graceful_shutdown_timeout = 10

        [supervisor]
        enabled_managers = demo

        [manager:demo]
        manager = workers.demo.DemoManager
        workers = {workers}
        periodic_interval_max = 60
        greeting_interval = 3600
        """
    )
    if database is not None:
        text += f"\n[database]\nconnection = {database.url}\n"
    config.write_text(text)
    return config


def ctl(config: Path, *command: str) -> tuple[int, Any]:
    """`mgr-supervisorctl --config-file F COMMAND --json`: its exit status and parsed output."""
    script = Path(sys.executable).with_name("mgr-supervisorctl")
    done = subprocess.run(
        [str(script), "--config-file", str(config), *command, "--json"],
        capture_output=True,
        text=True,
        timeout=CTL_TIMEOUT,
        check=False,
    )
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        return done.returncode, None


def run(
    tmp: Path, workers: int, seconds: float, database: ScratchDatabase | None
) -> dict[str, Any]:
    config = write_config(tmp, workers, database)
    log = tmp / "mgr-supervisor.log"
    script = Path(sys.executable).with_name("mgr-supervisor")
    figures: dict[str, Any] = {
        "backend": "PostgreSQL" if database is not None else "SQLite",
        "workers": workers,
        "seconds": seconds,
        "problems": [],
    }
    launched = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(script), "--config-file", str(config)],
            cwd=tmp,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pidfd = os.pidfd_open(process.pid)
    try:
        _measure(process, config, workers, seconds, database, launched, figures)
        _stop(process, pidfd, config, workers, figures)
    finally:
        os.close(pidfd)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        figures["left_after_stop"] = len(procs.descendants())
        figures["killed_by_pid"] = procs.kill_all()
    lines = log.read_text(errors="replace").splitlines()
    bad = [line for line in lines if " WARNING " in line or " ERROR " in line]
    figures["warnings_or_errors"] = len(bad)
    figures["problems"] += bad[:5]
    if bad:
        kept = CACHE / "logs" / f"reports-{time.strftime('%Y%m%d-%H%M%S')}-{process.pid}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, kept)
        figures["log_kept_at"] = str(kept)
    figures["ok"] = (
        not figures["problems"]
        and figures.get("records_off_by_more_than_1") == 0
        and figures.get("records_missing_at_first_reading") == 0
        and figures["left_after_stop"] == 0
    )
    return figures


def _wait_running(config: Path, workers: int, launched: float) -> float:
    """Poll `status --json` until every manager is RUNNING with all its workers ready."""
    while time.monotonic() - launched < READY_TIMEOUT:
        status, answer = ctl(config, "status")
        if status == 0 and answer is not None:
            managers = answer["managers"]
            ready = sum(1 for m in managers for w in m["workers"] if w["ready"])
            if all(m["state"] == "RUNNING" for m in managers) and ready == workers:
                return time.monotonic() - launched
        time.sleep(0.5)
    raise RuntimeError(f"not every manager RUNNING within {READY_TIMEOUT:.0f}s")


def _records(config: Path) -> tuple[float, dict[int, dict[str, Any]]]:
    """Every record of this run's host by worker id, and when they were read (monotonic)."""
    status, rows = ctl(config, "services", "--host", HOST)
    read_at = time.monotonic()
    if status != 0 or rows is None:
        raise RuntimeError(f"services --json failed with exit status {status}")
    return read_at, {row["worker_id"]: row for row in rows}


def _cpu(processes: list[psutil.Process]) -> tuple[float, int]:
    """psutil user+system seconds and schedstat ns, summed over `processes`."""
    ticks, ns = 0.0, 0
    for p in processes:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        ticks += times.user + times.system
        ns += procs.runtime_ns(p.pid)
    return ticks, ns


def _measure(
    process: subprocess.Popen[bytes],
    config: Path,
    workers: int,
    seconds: float,
    database: ScratchDatabase | None,
    launched: float,
    figures: dict[str, Any],
) -> None:
    # As seen by polling `status` every 0.5 s (each poll is a ~0.4 s command): not a startup time.
    figures["all_running_seen_after_s"] = _wait_running(config, workers, launched)
    time.sleep(SETTLE_SECONDS)
    first_at, first = _records(config)

    parent = psutil.Process(process.pid)
    recorder = [c for c in parent.children() if targets.is_recorder(c)]
    children = [c for c in parent.children() if c not in recorder]
    # PostgreSQL: the server processes of the supervisor's sessions, whose CPU the reports
    # cost the database host (SQLite has none: its work is in the recorder).
    backends = [] if database is None else _processes(database.backend_pids())
    before = time.monotonic()
    parent_before, children_before = _cpu([parent]), _cpu(children)
    recorder_before, backends_before = _cpu(recorder), _cpu(backends)
    time.sleep(seconds)
    parent_after, children_after = _cpu([parent]), _cpu(children)
    recorder_after, backends_after = _cpu(recorder), _cpu(backends)
    window = time.monotonic() - before
    last_at, last = _records(config)

    figures["window_s"] = window
    figures["parent_cpu_psutil_s"] = parent_after[0] - parent_before[0]
    figures["parent_cpu_psutil_pct_of_core"] = 100 * figures["parent_cpu_psutil_s"] / window
    figures["parent_cpu_schedstat_s"] = (parent_after[1] - parent_before[1]) / 1e9
    figures["parent_cpu_schedstat_pct_of_core"] = 100 * figures["parent_cpu_schedstat_s"] / window
    figures["recorder_cpu_schedstat_s"] = (recorder_after[1] - recorder_before[1]) / 1e9
    figures["recorder_cpu_schedstat_pct_of_core"] = (
        100 * figures["recorder_cpu_schedstat_s"] / window
    )
    figures["workers_cpu_psutil_s"] = children_after[0] - children_before[0]
    figures["workers_cpu_schedstat_s"] = (children_after[1] - children_before[1]) / 1e9
    figures["workers_cpu_schedstat_pct_of_core"] = 100 * figures["workers_cpu_schedstat_s"] / window
    if database is not None:
        figures["pg_sessions"] = len(backends)
        figures["pg_backends_cpu_schedstat_s"] = (backends_after[1] - backends_before[1]) / 1e9
    now_children = {c.pid for c in parent.children()}
    figures["same_workers_and_recorder"] = {c.pid for c in children + recorder} == now_children

    pids = {c.pid for c in children}
    figures["records"] = len(last)
    figures["records_up"] = sum(1 for r in last.values() if r["state"] == "up")
    figures["records_of_live_workers"] = sum(1 for r in last.values() if r["pid"] in pids)
    between = last_at - first_at
    made = 0
    lost = []
    for worker_id, row in last.items():
        if worker_id not in first:
            continue  # no record yet at the first reading: counted below, not compared
        start = first[worker_id]["report_count"]
        made += row["report_count"] - start
        expected = start + between / REPORT_INTERVAL
        if abs(row["report_count"] - expected) > 1:
            lost.append(f"worker {worker_id}: {row['report_count']} (expected {expected:.1f})")
    compared = [w for w in last if w in first]
    figures["between_readings_s"] = between
    figures["records_missing_at_first_reading"] = workers - len(compared)
    figures["reports_made"] = made
    figures["reports_expected"] = len(compared) * between / REPORT_INTERVAL
    figures["records_off_by_more_than_1"] = len(lost)
    figures["problems"] += lost[:5]
    if made:
        figures["workers_cpu_ms_per_report"] = 1000 * figures["workers_cpu_schedstat_s"] / made
        figures["recorder_cpu_ms_per_report"] = 1000 * figures["recorder_cpu_schedstat_s"] / made


def _processes(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return found


def _stop(
    process: subprocess.Popen[bytes],
    pidfd: int,
    config: Path,
    workers: int,
    figures: dict[str, Any],
) -> None:
    term = time.monotonic()
    process.send_signal(signal.SIGTERM)
    exited = procs.wait_exit(pidfd, STOP_TIMEOUT)
    figures["stop_s"] = None if exited is None else exited - term
    figures["exit_status"] = process.wait(timeout=10) if exited is not None else None
    _, rows = _records(config)
    figures["records_stopped_after_stop"] = sum(1 for r in rows.values() if r["state"] == "stopped")


def render(figures: dict[str, Any]) -> str:
    """A small markdown table of the run."""
    rows = ["| figure | value |", "| --- | --- |"]
    for key, value in figures.items():
        if key == "problems":
            continue
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        rows.append(f"| {key} | {shown} |")
    for problem in figures["problems"]:
        rows.append(f"| problem | {problem} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
