"""What a person or systemd reads: systemd's STATUS line and whether READY=1 is due."""

from __future__ import annotations

from supervisor import views
from supervisor.policy import State


def test_the_status_line_counts_ready_workers_of_each_manager(table, workers):
    workers.add("alpha", 0, ready=True)
    workers.add("alpha", 1, ready=False)
    workers.add("beta", 0, ready=True)
    status, all_ready = views.systemd_status(table)
    assert status == "2/3 workers ready: alpha 1/2, beta 1/1"
    assert not all_ready


def test_fatal_comes_first_and_does_not_hold_ready_back(table, workers):
    workers.add("beta", 0, ready=True)
    alpha = table.managers["alpha"]
    alpha.tracker.fatal, alpha.tracker.in_a_row, alpha.state = True, 3, State.FATAL
    status, all_ready = views.systemd_status(table)
    assert status == "FATAL: alpha (3 failed starts); 1/3 workers ready: alpha 0/2 FATAL, beta 1/1"
    assert all_ready, "READY=1 once the managers that can run are ready"


def test_a_manager_stopped_on_request_counts_no_worker(table, workers):
    workers.add("beta", 0, ready=True)
    alpha = table.managers["alpha"]
    alpha.stopped, alpha.state = True, State.STOPPED
    assert views.systemd_status(table) == ("1/1 workers ready: alpha STOPPED, beta 1/1", True)
