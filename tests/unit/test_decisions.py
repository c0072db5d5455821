"""The parent's decisions over a table of records: no process, no signal, no clock."""

from __future__ import annotations

import logging

from supervisor import decisions
from supervisor.decisions import Outcome
from supervisor.policy import RestartTracker
from supervisor.table import StopReason, Table
from tests.unit.conftest import Beta, spec

EXITED = "exit status 1"


def tracker(table: Table, name: str = "alpha") -> RestartTracker:
    return table.managers[name].tracker


# -- an exit


def test_a_settled_worker_that_dies_is_restarted_at_once(table, workers):
    record = workers.add("alpha", 0, forked_at=0, ready=True)
    verdict = decisions.classify_exit(table, record, EXITED, now=5)
    assert verdict.outcome is Outcome.RESTARTED and verdict.level == logging.WARNING
    assert "restarting it" in verdict.message
    assert record.pid not in table.workers
    assert tracker(table).may_start(5) and table.managers["alpha"].last_exit == EXITED


def test_an_exit_before_start_secs_is_a_failed_start_with_a_backoff(table, workers):
    record = workers.add("alpha", 0, forked_at=0, ready=True)
    verdict = decisions.classify_exit(table, record, EXITED, now=0.5)
    assert verdict.outcome is Outcome.FAILED_START
    assert "failed start 1 (FATAL after 3); next start in 1.0s" in verdict.message
    assert not tracker(table).may_start(1.4) and tracker(table).may_start(1.5)


def test_a_worker_never_ready_fails_its_start_however_long_it_lived(table, workers):
    record = workers.add("alpha", 0, forked_at=0, ready=False)
    verdict = decisions.classify_exit(table, record, EXITED, now=30)
    assert verdict.outcome is Outcome.FAILED_START and ", never ready" in verdict.message


def test_start_retries_plus_one_failed_starts_are_fatal(table, workers):
    outcomes = []
    for attempt in range(3):
        record = workers.add("alpha", 0, forked_at=10 * attempt)
        outcomes.append(decisions.classify_exit(table, record, EXITED, 10 * attempt).outcome)
    assert outcomes == [Outcome.FAILED_START, Outcome.FAILED_START, Outcome.FATAL]
    assert tracker(table).fatal and table.managers["alpha"].failed_starts_total == 3


def test_a_requested_stop_is_final_and_counts_nothing(table, workers):
    record = workers.add("alpha", 0, forked_at=0)
    record.stop_reason = StopReason.SCALED_DOWN
    verdict = decisions.classify_exit(table, record, "exit status 0", now=0.1)
    assert verdict.outcome is Outcome.STOPPED and verdict.level == logging.INFO
    assert "stopped (scaled down)" in verdict.message
    assert table.managers["alpha"].failed_starts_total == 0 and tracker(table).may_start(0.1)


def test_a_recycled_worker_comes_back_after_the_backoff(table, workers):
    record = workers.add("alpha", 0, forked_at=0, ready=True)
    record.stop_reason = StopReason.HEARTBEAT_TIMEOUT
    verdict = decisions.classify_exit(table, record, "exit status 0", now=50)
    assert verdict.outcome is Outcome.RECYCLED and "next start in 1.0s" in verdict.message
    assert not tracker(table).may_start(50.5)


def test_a_start_timeout_is_a_failed_start(table, workers):
    record = workers.add("alpha", 0, forked_at=0, ready=False)
    record.stop_reason = StopReason.START_TIMEOUT
    verdict = decisions.classify_exit(table, record, "signal SIGKILL", now=60)
    assert verdict.outcome is Outcome.FAILED_START


def test_a_removed_manager_is_forgotten_with_its_last_worker(table, workers):
    first, second = workers.add("beta", 0), workers.add("beta", 1)
    table.managers["beta"].removing = True
    for record in (first, second):
        record.stop_reason = StopReason.REMOVED
    decisions.classify_exit(table, first, "exit status 0", now=1)
    assert "beta" in table.managers
    decisions.classify_exit(table, second, "exit status 0", now=1)
    assert "beta" not in table.managers


# -- settling


def test_a_ready_worker_past_start_secs_settles_and_clears_the_count(table, workers):
    tracker(table).record_exit(now=0, failed_start=True)
    ready = workers.add("alpha", 0, forked_at=10, ready=True)
    unready = workers.add("alpha", 1, forked_at=10, ready=False)
    decisions.settle(table, now=10.5)
    assert not ready.settled and tracker(table).in_a_row == 1
    decisions.settle(table, now=11)
    assert ready.settled and not unready.settled and tracker(table).in_a_row == 0


# -- a reload


def test_a_reload_resets_kept_workers_adds_and_removes_managers(table, workers):
    alpha = [workers.add("alpha", i) for i in range(2)]
    beta = workers.add("beta", 0)
    plan = decisions.reconcile(table, [spec("alpha", 2), spec("gamma", 1)])
    assert plan.reset == sorted(alpha, key=lambda r: -r.worker_id)
    assert [s.name for s in plan.added] == ["gamma"]
    assert [(s.record, s.reason) for s in plan.stop] == [(beta, StopReason.REMOVED)]
    assert table.managers["beta"].removing
    assert plan.notes == ["manager gamma added", "manager beta removed, stopping its workers"]


def test_a_reload_that_shrinks_stops_the_highest_ids(table, workers):
    table.managers["alpha"].spec = spec("alpha", 3)
    records = [workers.add("alpha", i) for i in range(3)]
    plan = decisions.reconcile(table, [spec("alpha", 1), spec("beta", 1)])
    assert [(s.record.worker_id, s.reason) for s in plan.stop] == [
        (2, StopReason.SCALED_DOWN),
        (1, StopReason.SCALED_DOWN),
    ]
    assert plan.reset == [records[0]] and "manager alpha: 3 -> 1 worker(s)" in plan.notes


def test_a_reload_that_changes_the_class_replaces_every_worker(table, workers):
    records = [workers.add("alpha", i) for i in range(2)]
    records[0].stop_reason = StopReason.RESTART_REQUESTED  # already on its way out
    plan = decisions.reconcile(table, [spec("alpha", 2, cls=Beta), spec("beta", 1)])
    assert [(s.record, s.reason) for s in plan.stop] == [(records[1], StopReason.REPLACED)]
    assert plan.reset == [] and table.managers["alpha"].spec.manager_class is Beta


def test_a_reload_forgives_fatal_and_stopped(table, workers):
    tracker(table).fatal = True
    table.managers["beta"].stopped = True
    decisions.reconcile(table, [spec("alpha", 2), spec("beta", 1)])
    assert not tracker(table).fatal and not table.managers["beta"].stopped
    assert len(decisions.due_starts(table, now=0)) == 3


# -- stop, start and restart NAME


def test_stop_name_stops_its_workers_and_a_recycling_one_for_good(table, workers):
    running, recycling = workers.add("alpha", 0), workers.add("alpha", 1)
    recycling.stop_reason = StopReason.MAX_RSS_MB
    tracked = table.managers["alpha"]
    stops = decisions.stop_manager(table, tracked)
    assert [(s.record, s.reason) for s in stops] == [(running, StopReason.STOP_REQUESTED)]
    assert recycling.stop_reason is StopReason.STOP_REQUESTED
    assert decisions.stop_manager(table, tracked) == [], "stopping a STOPPED one: no-op"
    assert decisions.due_starts(table, now=0) == [(table.managers["beta"], 0)]
    assert decisions.start_manager(tracked) and not decisions.start_manager(tracked)


def test_a_rolling_restart_replaces_one_worker_at_a_time(table, workers):
    old = [workers.add("alpha", i, ready=True) for i in range(2)]
    tracked = table.managers["alpha"]
    assert decisions.restart_manager(table, tracked, all_at_once=False) == []
    (first,) = decisions.advance_restarts(table)
    assert (first.record, first.reason) == (old[0], StopReason.RESTART_REQUESTED)
    old[0].stop_reason = first.reason
    assert decisions.advance_restarts(table) == [], "waits for worker 0's replacement"
    del table.workers[old[0].pid]
    workers.add("alpha", 0, ready=False)
    assert decisions.advance_restarts(table) == [], "the replacement is not ready yet"
    table.workers.popitem()
    workers.add("alpha", 0, ready=True)
    (second,) = decisions.advance_restarts(table)
    assert second.record is old[1]
    old[1].stop_reason = second.reason
    workers.add("alpha", 1, ready=True)
    assert decisions.advance_restarts(table) == [] and tracked.rolled is None


def test_restart_all_at_once_stops_every_running_worker(table, workers):
    records = [workers.add("alpha", i) for i in range(2)]
    stops = decisions.restart_manager(table, table.managers["alpha"], all_at_once=True)
    assert {s.record.pid for s in stops} == {r.pid for r in records}


# -- what is due


def test_due_starts_wait_for_the_backoff_of_their_own_manager_only(table, workers):
    workers.add("alpha", 1)
    tracker(table).record_exit(now=0, failed_start=True)
    assert decisions.due_starts(table, now=0.5) == [(table.managers["beta"], 0)]
    assert (table.managers["alpha"], 0) in decisions.due_starts(table, now=1)


def test_a_kill_deadline_is_due_once(table, workers):
    record = workers.add("alpha", 0)
    record.kill_at = 10
    assert decisions.due_kills(table, now=9) == []
    assert decisions.due_kills(table, now=10) == [record]
    assert decisions.due_kills(table, now=11) == []


def test_the_supervisor_gives_up_only_when_every_manager_is_fatal_and_idle(table, workers):
    tracker(table, "alpha").fatal = True
    assert not decisions.every_manager_fatal(table)
    tracker(table, "beta").fatal = True
    record = workers.add("beta", 0)
    assert not decisions.every_manager_fatal(table), "a worker still runs"
    del table.workers[record.pid]
    assert decisions.every_manager_fatal(table)
