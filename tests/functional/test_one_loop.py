"""The parent is one thread and one loop: no multiprocessing under the workers, and an
unexpected exception in a pass stops everything gracefully instead of running unsupervised."""

from __future__ import annotations

import os
import signal
import time

FORKSERVER = "tests.functional.forkserver_manager.ForkserverManager"
SABOTAGED = "tests.functional.sabotage.SabotagedManager"


def test_the_parent_has_one_thread(supervisor):
    supervisor.configure({"alpha": {"workers": 2}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 3, what="3 ready")
    time.sleep(0.5)
    threads = os.listdir(f"/proc/{supervisor.pid}/task")
    assert threads == [str(supervisor.pid)], f"{len(threads)} threads"


def test_workers_start_when_forkserver_is_the_default_start_method(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "manager": FORKSERVER}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    assert supervisor.count("tick") >= 0 and supervisor.proc.poll() is None
    assert set(supervisor.pids_with("init_host")) == set(supervisor.worker_titles().values())


def test_an_unexpected_exception_in_the_loop_stops_gracefully_with_status_1(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "manager": SABOTAGED}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    supervisor.signal(signal.SIGHUP)
    assert supervisor.wait_exit(timeout=10) == 1
    # Before the parent exits, not after it by the workers' parent-death signal.
    assert supervisor.count("cleanup_host") == 2
    log = supervisor.log()
    assert "Traceback" in log and "handle_hup sabotaged on purpose" in log
