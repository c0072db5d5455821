"""A hook that raises is logged with its traceback and the worker exits non-zero."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("hook", ["pre_start_hook", "post_start_hook"])
def test_a_failing_startup_hook_after_init_host_still_cleans_up(supervisor, hook):
    supervisor.configure({"alpha": {"fail_in": hook}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("cleanup_host") >= 1, what="cleanup_host")
    supervisor.wait_for(lambda: supervisor.count("tick") >= 1, what="beta ticking")
    log = supervisor.log()
    assert f"alpha worker(0): {hook}() raised" in log
    assert f"RuntimeError: {hook} failed on purpose" in log
    assert "Traceback" in log
    beta = [w for w in supervisor.events() if w[1] == "init_host" and w[2] == "beta"]
    assert len(beta) == 1, "a failing manager must not disturb another one"
    assert supervisor.pids_with("tick") == [int(beta[0][0])]


def test_a_failing_init_host_exits_non_zero_without_cleanup(supervisor):
    supervisor.configure({"alpha": {"fail_in": "init_host"}})
    supervisor.start()
    supervisor.wait_for(lambda: "exit status 1 after" in supervisor.log(), what="exit 1")
    assert "alpha worker(0): init_host() raised" in supervisor.log()
    assert supervisor.count("cleanup_host") == 0
    assert supervisor.count("pre_start_hook") == 0


def test_a_failing_reset_ends_the_worker_after_cleanup(supervisor):
    supervisor.configure({"alpha": {"fail_in": "reset"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick"), what="a tick")
    (first,) = supervisor.pids_with("init_host")
    import signal

    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: first in supervisor.pids_with("cleanup_host"), what="cleanup")
    supervisor.wait_for(lambda: supervisor.count("init_host") == 2, what="a restart")
    assert "reset() raised" in supervisor.log()


def test_a_failing_periodic_task_is_logged_and_the_loop_goes_on(supervisor):
    supervisor.configure({"alpha": {"fail_in": "tick"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 2, what="2 ticks")
    assert len(set(supervisor.pids_with("tick"))) == 1
    assert "tick failed on purpose" in supervisor.log()


def test_a_manager_whose_constructor_raises_is_reported(supervisor):
    supervisor.configure({"alpha": {"manager": "tests.functional.managers.BrokenInit"}})
    supervisor.start()
    supervisor.wait_for(
        lambda: "building tests.functional.managers.BrokenInit failed" in supervisor.log(),
        what="error",
    )
    assert "constructor failed on purpose" in supervisor.log()
