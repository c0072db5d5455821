"""A reload that passed validation never stops what it does not have to, nor the supervisor."""

from __future__ import annotations

import signal
import time


def test_a_manager_option_that_changes_type_does_not_stop_the_others(supervisor):
    supervisor.configure({"alpha": {}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    before = supervisor.worker_titles()
    # Valid for RetypedManager's StrOpt; not a float, as EventManager's option was.
    retyped = {"manager": "tests.functional.managers.RetypedManager", "slow_seconds": "a while"}
    supervisor.configure({"alpha": retyped, "beta": {}})
    supervisor.signal(signal.SIGHUP)
    # oslo.config cannot unregister an option: rejected before anything changed, with a reason.
    supervisor.wait_for(lambda: "reload rejected" in supervisor.log(), what="the rejection")
    assert "[manager:alpha] slow_seconds:" in supervisor.log()
    assert "restart the supervisor to apply it" in supervisor.log()
    time.sleep(1.5)
    assert supervisor.proc.poll() is None, "the supervisor stopped on a valid reload"
    assert "internal error" not in supervisor.log()
    assert supervisor.worker_titles() == before
    assert supervisor.count("cleanup_host") == 0, "a rejected reload stopped a worker"
    assert supervisor.count("reset") == 0
