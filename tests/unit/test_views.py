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


def test_a_manager_stopped_on_request_is_not_counted_not_ready(table):
    """`manager_not_ready_seconds` (README's ManagerNotReady alert) stays 0 while STOPPED,
    and counts again from the start that follows."""
    alpha = table.managers["alpha"]
    alpha.note_state(State.STARTING, now=0)
    alpha.stopped = True
    alpha.note_state(State.STOPPED, now=10)
    assert not_ready_for(table, now=100) == 0.0
    alpha.stopped = False
    alpha.note_state(State.STARTING, now=100)
    assert not_ready_for(table, now=105) == 5.0


def not_ready_for(table, now: float) -> float:
    (alpha,) = table.status(now, stopping=False, names=["alpha"])
    return alpha["not_ready_for"]
