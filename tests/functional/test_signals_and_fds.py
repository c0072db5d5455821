"""What a worker gets from the parent: no stop blocked by SIGSTOP, clean signal state for its
children, and none of the parent's sockets or pipes."""

from __future__ import annotations

import json
import os
import signal
import time

from tests.functional.test_ctl import ctl


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
