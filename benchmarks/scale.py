"""Item 4, the scale check: 256 workers of the shipped DemoManager start, reload and stop.

Runs the shipped `etc/mgr-supervisor/mgr-supervisor.conf` with only `workers` changed and
reads the demo's own log lines (stderr) instead of a probe: this is the product as shipped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import psutil

from benchmarks import procs
from benchmarks.probe import Recorder, first_by_pid, nth
from benchmarks.targets import REPO

SHIPPED_CONFIG = REPO / "etc" / "mgr-supervisor" / "mgr-supervisor.conf"
# Our default format: "DATE TIME.MS PID PROCESS LEVEL LOGGER [-] MESSAGE", where PROCESS is
# master, recorder or "NAME worker(ID)" (supervisor/logs.py).
LOG_LINE = re.compile(
    r"^\S+ \S+ (?P<pid>\d+) (?P<process>.+?) (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"\S+ \[[^]]*\] (?P<message>.*)$"
)
EVENTS = {
    "ready": re.compile(r"worker\(\d+\): ready$"),
    "reset": re.compile(r": reset, greeting is now"),
    "cleanup": re.compile(r": cleanup_host$"),
}
TIMEOUT = 120.0
IDLE_SECONDS = 10.0


class LogProbe(Recorder):
    """Turns the demo's log lines into events; counts warnings and errors on the way."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            match = LOG_LINE.match(line)
            if match is None:
                if line.strip():
                    self.problems.append(line)
                continue
            if match["level"] not in ("DEBUG", "INFO"):
                self.problems.append(line)
            for kind, pattern in EVENTS.items():
                if pattern.search(match["message"]):
                    self.record(kind, int(match["pid"]))

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def check(workers: int) -> dict[str, object]:
    """Start, idle, reload and stop `workers` demo workers; the figures and what went wrong."""
    figures: dict[str, object] = {"workers": workers}
    with tempfile.TemporaryDirectory(prefix="mgr-scale-") as tmp:
        config = Path(tmp) / "mgr-supervisor.conf"
        text = SHIPPED_CONFIG.read_text()
        config.write_text(re.sub(r"(?m)^workers\s*=.*$", f"workers = {workers}", text))
        script = Path(sys.executable).with_name("mgr-supervisor")
        launched = time.monotonic()
        process = subprocess.Popen(
            [str(script), "--config-file", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        log = LogProbe(process.stderr)
        try:
            _measure(process, log, workers, launched, figures)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            log.join(timeout=5)
            procs.kill_all()
        figures["exit_status"] = process.returncode
        figures["warnings_or_errors"] = len(log.problems)
        figures["first_problems"] = log.problems[:5]
    return figures


def _measure(
    process: subprocess.Popen[bytes],
    log: LogProbe,
    workers: int,
    launched: float,
    figures: dict[str, object],
) -> None:
    pid = process.pid
    pidfd = os.pidfd_open(pid)
    try:
        _steps(process, pidfd, log, workers, launched, figures)
    finally:
        os.close(pidfd)


def _steps(
    process: subprocess.Popen[bytes],
    pidfd: int,
    log: LogProbe,
    workers: int,
    launched: float,
    figures: dict[str, object],
) -> None:
    """Startup, idle, reload, stop; stops at the first step that times out."""
    ready_at, events = log.wait(0, lambda e: nth(first_by_pid(e, "ready"), workers), TIMEOUT)
    figures["startup_s"] = None if ready_at is None else ready_at - launched
    if ready_at is None:
        figures["ready"] = len(first_by_pid(events, "ready"))
        return
    parent = psutil.Process(process.pid)
    figures["startup_parent_cpu_s"] = sum(parent.cpu_times()[:2])
    time.sleep(2)
    before = parent.cpu_times()
    time.sleep(IDLE_SECONDS)
    after = parent.cpu_times()
    figures["idle_parent_cpu_s"] = after.user + after.system - before.user - before.system
    tree = [parent, *parent.children(recursive=True)]
    figures["pss_mib"] = sum(p.memory_full_info().pss for p in tree) / 2**20
    workers_before = {p.pid for p in tree[1:]}

    since = log.mark()
    hup = time.monotonic()
    process.send_signal(signal.SIGHUP)
    reset_at, events = log.wait(since, lambda e: nth(first_by_pid(e, "reset"), workers), TIMEOUT)
    figures["reload_s"] = None if reset_at is None else reset_at - hup
    figures["reset_in_place"] = set(first_by_pid(events, "reset")) == workers_before
    time.sleep(1)

    since = log.mark()
    term = time.monotonic()
    process.send_signal(signal.SIGTERM)
    exited = procs.wait_exit(pidfd, TIMEOUT)
    if exited is None:
        figures["stop_s"] = None
        return
    cleaned_at, events = log.wait(since, lambda e: nth(first_by_pid(e, "cleanup"), workers), 5.0)
    figures["cleanups"] = len(first_by_pid(events, "cleanup"))
    figures["orphans"] = len(procs.descendants())
    figures["stop_s"] = None if cleaned_at is None else max(exited, cleaned_at) - term


def render(figures: dict[str, object]) -> str:
    """One markdown table of the scale check."""
    rows = ["| figure | value |", "| --- | --- |"]
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        rows.append(f"| {key} | {shown} |")
    return "\n".join(rows)
