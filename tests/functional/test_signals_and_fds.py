"""What a worker gets from the parent: no stop blocked by SIGSTOP, clean signal state for its
children, and none of the parent's sockets or pipes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import signal
import subprocess
import termios
import threading
import time

from tests.functional.conftest import SCRIPT, TESTS_DIR, ctl


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as stream:
        return dict(line.rstrip("\n").split(":\t", 1) for line in stream if ":\t" in line)


def test_status_shows_a_stopped_worker_as_stopped(supervisor):
    supervisor.configure({"alpha": {"workers": 2}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    stopped, running = sorted(supervisor.worker_titles().values())
    os.kill(stopped, signal.SIGSTOP)
    try:
        supervisor.wait_for(lambda: proc_status(stopped)["State"].startswith("T"), what="stopped")
        workers = {
            w["pid"]: w
            for m in json.loads(ctl(supervisor, "status", "--json").stdout)["managers"]
            for w in m["workers"]
        }
        assert workers[stopped]["process_state"] == "stopped"
        assert workers[running]["process_state"] in ("sleeping", "running")
    finally:
        os.kill(stopped, signal.SIGCONT)


def test_a_stopped_worker_does_not_block_the_stop(supervisor):
    supervisor.configure({"alpha": {"workers": 2}}, default={"graceful_shutdown_timeout": 30})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    stopped = min(supervisor.worker_titles().values())
    os.kill(stopped, signal.SIGSTOP)
    supervisor.wait_for(lambda: proc_status(stopped)["State"].startswith("T"), what="stopped")
    started = time.monotonic()
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait_exit(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert stopped in supervisor.pids_with("cleanup_host"), "the stopped worker was killed"
    assert supervisor.count("cleanup_host") == 2


def test_children_of_managers_start_with_default_signal_state(supervisor):
    supervisor.configure({"alpha": {"spawn_child": "true"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("child") == 1, what="a child")
    (child,) = [int(w[2]) for w in supervisor.events() if w[1] == "child"]
    status = proc_status(child)
    assert int(status["SigIgn"], 16) == 0, f"ignored: {status['SigIgn']}"
    assert int(status["SigBlk"], 16) == 0, f"blocked: {status['SigBlk']}"


def test_workers_do_not_hold_the_control_socket_after_the_parent_dies(supervisor):
    supervisor.configure({"alpha": {"slow_in": "cleanup_host", "slow_seconds": 5}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    supervisor.workers()
    supervisor.signal(signal.SIGKILL)
    supervisor.wait_exit()
    supervisor.wait_for(
        lambda: supervisor.count("cleanup_host"), what="cleanup under way", parent_alive=False
    )
    started = time.monotonic()
    result = ctl(supervisor, "status")
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert elapsed < 3, f"mgr-supervisorctl waited {elapsed:.1f}s on a dead supervisor's socket"
    (worker,) = supervisor.pids_with("cleanup_host")
    os.kill(worker, signal.SIGKILL)  # seen enough: no need to wait for its slow cleanup


def test_workers_log_to_a_terminal_that_stops_background_writers(supervisor):
    """Run from a shell with `stty tostop`: a write from a background process group of the
    terminal's session gets SIGTTOU. Workers are in sessions of their own, so it never does."""
    supervisor.configure({"alpha": {"workers": 2}})
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] |= termios.TOSTOP
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    output: list[bytes] = []

    def drain() -> None:  # a full terminal buffer would block every writer
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                output.append(chunk)

    def take_the_terminal() -> None:  # a login shell's set-up: a session leader with a tty
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    supervisor.proc = subprocess.Popen(
        [str(SCRIPT), "--config-file", str(supervisor.config_file)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=take_the_terminal,
        env=dict(os.environ, PYTHONPATH=str(TESTS_DIR.parent)),
        cwd=supervisor.tmp_path,
    )
    os.close(slave)
    threading.Thread(target=drain, daemon=True).start()
    try:
        supervisor.wait_for(lambda: len(set(supervisor.pids_with("tick"))) == 2, what="2 ticking")
        for pid in supervisor.worker_titles().values():
            assert not proc_status(pid)["State"].startswith("T"), "a worker was stopped"
        assert b"alpha worker(1): ready" in b"".join(output)
        assert supervisor.stop() == 0
    finally:
        with contextlib.suppress(OSError):
            os.close(master)
