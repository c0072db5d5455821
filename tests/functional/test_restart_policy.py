"""Restart policy and health: bounded crash loops, FATAL, hung, slow and leaking workers."""

from __future__ import annotations

import signal
import time

import psutil

FAST_BACKOFF = {"restart_backoff_initial": 0.1, "restart_backoff_max": 0.4, "start_secs": 1}


def alpha_starts(supervisor) -> int:
    return len([w for w in supervisor.events() if w[1] == "init_host" and w[2] == "alpha"])


def test_a_crash_loop_is_bounded_by_the_backoff(supervisor):
    # Starts at about 0, 0.25, 0.75, 1.75 and 3.75 s (plus each start's own time); without
    # the backoff it would be dozens.
    supervisor.configure({"alpha": {"fail_in": "init_host", "restart_backoff_initial": 0.25}})
    supervisor.start()
    started = time.monotonic()
    supervisor.wait_for(lambda: time.monotonic() - started > 4, timeout=10, what="4 s")
    assert 3 <= alpha_starts(supervisor) <= 5
    assert "failed start" in supervisor.log()
    assert "Forking too fast" not in supervisor.log()


def test_a_crash_loop_never_delays_a_healthy_manager(supervisor):
    # alpha waits 10 s after its first failed start: beta's replacement must not.
    supervisor.configure(
        {
            "alpha": {"fail_in": "init_host", "restart_backoff_initial": 10},
            "beta": {"start_secs": 0.5},
        }
    )
    supervisor.start()
    supervisor.wait_for(lambda: "failed start" in supervisor.log(), what="alpha's failed start")
    supervisor.wait_for(lambda: supervisor.count("tick") >= 1, what="beta ticking")
    (beta,) = supervisor.pids_with("tick")
    time.sleep(0.6)  # past beta's start_secs: its exit is not a failed start
    psutil.Process(beta).kill()
    supervisor.wait_for(
        lambda: supervisor.count("post_start_hook") == 2, timeout=5, what="beta replaced"
    )
    assert alpha_starts(supervisor) == 1


def test_a_manager_is_fatal_after_start_retries_plus_one_starts(supervisor):
    supervisor.configure(
        {"alpha": {"fail_in": "init_host", "start_retries": 3, **FAST_BACKOFF}, "beta": {}}
    )
    supervisor.start()
    supervisor.wait_for(lambda: "manager alpha is FATAL" in supervisor.log(), what="FATAL")
    time.sleep(1.0)
    assert alpha_starts(supervisor) == 4
    log = supervisor.log()
    assert log.count("is FATAL") == 1
    assert "4 failed starts in a row, the last exit status 1" in log
    assert supervisor.count("tick") >= 1 and supervisor.proc.poll() is None


def test_the_supervisor_exits_1_when_every_manager_is_fatal(supervisor):
    supervisor.configure(
        {"alpha": {"fail_in": "pre_start_hook", "start_retries": 1, **FAST_BACKOFF}}
    )
    supervisor.start()
    assert supervisor.wait_exit(timeout=15) == 1
    assert alpha_starts(supervisor) == 2
    assert "every manager is FATAL" in supervisor.log()


def test_a_worker_that_lived_past_start_secs_is_restarted_at_once(supervisor):
    supervisor.configure({"alpha": {"start_secs": 0.2}})
    supervisor.start()
    for kills in range(1, 4):
        supervisor.wait_for(lambda k=kills: supervisor.count("tick") >= k, what="a tick")
        time.sleep(0.3)
        (worker,) = supervisor.worker_titles().values()
        psutil.Process(worker).kill()
        killed_at = time.monotonic()
        supervisor.wait_for(
            lambda k=kills: supervisor.count("post_start_hook") == k + 1, what="replacement"
        )
        assert time.monotonic() - killed_at < 1.0
    assert "failed start" not in supervisor.log()


def test_the_orphans_of_a_killed_worker_are_killed(supervisor):
    supervisor.configure({"alpha": {"spawn_child": "true"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("child"), what="a child")
    (child,) = [int(w[2]) for w in supervisor.events() if w[1] == "child"]
    (worker,) = supervisor.worker_titles().values()
    psutil.Process(worker).kill()
    supervisor.wait_for(lambda: not psutil.pid_exists(child), what="the orphan killed and reaped")
    supervisor.wait_for(lambda: supervisor.count("child") == 2, what="a new worker and child")


def test_a_hung_periodic_task_is_detected_and_the_worker_replaced(supervisor):
    supervisor.configure(
        {"alpha": {"block_in": "tick", "heartbeat_timeout": 1}},
        default={"graceful_shutdown_timeout": 2},
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick-blocked") >= 2, timeout=15, what="2 hangs")
    first, second = supervisor.pids_with("tick-blocked")[:2]
    assert first != second
    assert first in supervisor.pids_with("cleanup_host")
    assert "stuck in periodic task tick for" in supervisor.log()
    assert supervisor.level_of("; stopping it") == "WARNING", "judged unhealthy: a warning"


def test_a_slow_init_host_hits_start_timeout_and_counts_as_a_failed_start(supervisor):
    supervisor.configure(
        {"alpha": {"slow_in": "init_host", "slow_seconds": 30, "start_timeout": 1, **FAST_BACKOFF}},
        default={"graceful_shutdown_timeout": 2},
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("init_host") >= 2, timeout=15, what="a restart")
    log = supervisor.log()
    assert "not ready" in log and "start_timeout=1s" in log and "in init_host for" in log
    assert "failed start 1" in log


def test_a_leaking_worker_is_recycled_gracefully(supervisor):
    supervisor.configure({"alpha": {"leak_mb": 100, "max_rss_mb": 250}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("init_host") >= 2, timeout=20, what="a recycle")
    (first, *_) = supervisor.pids_with("init_host")
    assert first in supervisor.pids_with("cleanup_host")
    assert "over max_rss_mb=250" in supervisor.log()
    assert "failed start" not in supervisor.log()


def test_sigterm_while_a_manager_is_in_backoff_stops_at_once(supervisor):
    supervisor.configure({"alpha": {"fail_in": "init_host", "restart_backoff_initial": 30}})
    supervisor.start()
    supervisor.wait_for(lambda: "next start in 30.0s" in supervisor.log(), what="a backoff")
    started = time.monotonic()
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait_exit(timeout=10) == 0
    assert time.monotonic() - started < 5
