"""Beacons and health checks as pure logic (the beacon's memory is shared across fork)."""

from __future__ import annotations

import os

from supervisor.health import WAITING_FOR_BROKER, Beacon, HealthLimits, Snapshot, check


def test_a_beacon_written_in_a_child_is_read_in_the_parent():
    beacon = Beacon()
    pid = os.fork()
    if pid == 0:
        beacon.mark_ready("periodic task sync")
        os._exit(0)
    os.waitpid(pid, 0)
    snapshot = beacon.read()
    assert snapshot.ready
    assert snapshot.phase == "periodic task sync"


def test_limits_off_by_default():
    assert not HealthLimits().any
    assert check(HealthLimits(), Snapshot("init_host", 0, 0, False), age=1e6, now=1e6) is None


def test_start_timeout_applies_until_ready():
    limits = HealthLimits(start_timeout=5)
    slow = Snapshot("init_host", phase_since=100, idle_until=0, ready=False)
    assert check(limits, slow, age=4, now=104) is None
    reason = check(limits, slow, age=6, now=106)
    assert reason is not None and "in init_host for 6.0s" in reason
    ready = Snapshot("idle", phase_since=100, idle_until=0, ready=True)
    assert check(limits, ready, age=60, now=160) is None


def test_heartbeat_timeout_names_the_stuck_phase():
    limits = HealthLimits(heartbeat_timeout=10)
    busy = Snapshot("periodic task sync", phase_since=100, idle_until=0, ready=True)
    assert check(limits, busy, age=50, now=109) is None
    reason = check(limits, busy, age=50, now=111)
    assert reason is not None and "stuck in periodic task sync for 11.0s" in reason


def test_an_idle_worker_is_late_only_past_its_promised_wake_up():
    limits = HealthLimits(heartbeat_timeout=10)
    idle = Snapshot("idle", phase_since=100, idle_until=160, ready=True)
    assert check(limits, idle, age=100, now=165) is None
    assert check(limits, idle, age=100, now=171) is not None


def test_a_stopping_worker_is_not_judged_by_its_heartbeat():
    limits = HealthLimits(heartbeat_timeout=1)
    stopping = Snapshot("cleanup_host", phase_since=0, idle_until=0, ready=True)
    assert check(limits, stopping, age=100, now=100) is None


def test_rpc_state_and_counts_written_in_a_child_are_read_in_the_parent():
    beacon = Beacon()
    first = beacon.read()
    assert (first.rpc, first.rpc_served, first.rpc_failed, first.rpc_rejected) == ("off", 0, 0, 0)
    pid = os.fork()
    if pid == 0:
        beacon.set_rpc_state("consuming")
        for outcome in ("served", "served", "failed", "rejected", "rejected", "rejected"):
            beacon.count_rpc(outcome)
        beacon.set_phase("idle")  # a phase change keeps the counts
        os._exit(0)
    os.waitpid(pid, 0)
    snapshot = beacon.read()
    assert (snapshot.rpc, snapshot.rpc_served, snapshot.rpc_failed) == ("consuming", 2, 1)
    assert snapshot.rpc_rejected == 3
    assert snapshot.phase == "idle"


def test_waiting_for_the_broker_is_not_a_failed_start():
    limits = HealthLimits(start_timeout=5)
    waiting = Snapshot(WAITING_FOR_BROKER, phase_since=100, idle_until=0, ready=False)
    assert check(limits, waiting, age=600, now=700) is None
    stuck = Snapshot("pre_start_hook", phase_since=100, idle_until=0, ready=False)
    assert check(limits, stuck, age=6, now=106) is not None
