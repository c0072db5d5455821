"""Stopping: graceful, bounded by graceful_shutdown_timeout, and Ctrl-C twice."""

from __future__ import annotations

import os
import signal
import time


def test_stuck_cleanup_host_is_bounded_by_the_graceful_timeout(supervisor):
    supervisor.configure(
        {"alpha": {"workers": 2, "block_in": "cleanup_host", "spawn_child": "true"}},
        default={"graceful_shutdown_timeout": 2},
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("child") == 2, what="2 workers with children")
    started = time.monotonic()
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait_exit(timeout=2 + 8) == 0
    elapsed = time.monotonic() - started
    assert elapsed >= 1.5, "the workers were not given their graceful timeout"
    assert supervisor.count("cleanup_host-blocked") == 2
    assert supervisor.leftovers() == [], "workers and their children must be killed"
    assert "still running after 2s" in supervisor.log()


def test_cleanup_host_runs_while_a_periodic_task_is_stuck(supervisor):
    supervisor.configure({"alpha": {"block_in": "tick"}}, default={"graceful_shutdown_timeout": 4})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick-blocked"), what="a stuck tick")
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait_exit(timeout=10) == 0
    assert supervisor.count("cleanup_host") == 1
    assert "periodic task tick still running" in supervisor.log()


def test_first_sigint_is_a_graceful_stop(supervisor):
    supervisor.configure({"alpha": {"workers": 2}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 2, what="2 ticks")
    supervisor.signal(signal.SIGINT)
    assert supervisor.wait_exit(timeout=10) == 0
    assert supervisor.count("cleanup_host") == 2


def test_second_sigint_stops_at_once(supervisor):
    supervisor.configure(
        {"alpha": {"block_in": "cleanup_host", "spawn_child": "true"}},
        default={"graceful_shutdown_timeout": 60},
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("child"), what="a worker with a child")
    supervisor.signal(signal.SIGINT)
    supervisor.wait_for(lambda: supervisor.count("cleanup_host-blocked"), what="cleanup under way")
    supervisor.signal(signal.SIGINT)
    assert supervisor.wait_exit(timeout=5) == 0
    assert supervisor.leftovers() == []


def test_sigterm_during_startup_stops_cleanly(supervisor):
    supervisor.configure({"alpha": {"workers": 3, "slow_in": "init_host", "slow_seconds": 1}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("init_host") == 3, what="3 init_host")
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait_exit(timeout=10) == 0
    assert supervisor.count("init_host-done") == 3
    assert supervisor.count("cleanup_host") == 3
    assert supervisor.count("pre_start_hook") == 0


def test_workers_clean_up_and_exit_when_the_parent_is_killed(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "spawn_child": "true"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("child") == 2, what="2 workers with children")
    supervisor.workers()
    supervisor.signal(signal.SIGKILL)
    supervisor.wait_exit()
    supervisor.wait_for(
        lambda: supervisor.count("cleanup_host") == 2, what="2 cleanups", parent_alive=False
    )
    assert supervisor.leftovers(grace=5) == []


def test_sigusr2_reports_the_threads_stacks_and_changes_nothing(supervisor):
    supervisor.configure({"alpha": {"block_in": "tick"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick-blocked"), what="a stuck tick")
    (worker,) = supervisor.worker_titles().values()
    os.kill(worker, signal.SIGUSR2)  # one at a time: two reports at once interleave
    # Its main thread writes the report: the stuck run thread is in it.
    supervisor.wait_for(lambda: "in _hook" in supervisor.log(), what="the worker's stuck task")
    supervisor.signal(signal.SIGUSR2)
    supervisor.wait_for(lambda: "in _run_pass" in supervisor.log(), what="the parent's loop")
    assert supervisor.proc.poll() is None
    assert worker in supervisor.worker_titles().values()
