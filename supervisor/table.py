"""What runs: the parent's records of managers and workers, and the states derived from them.

Plain data owned by the arbiter's loop (one thread, so no lock). `status` and systemd's
STATUS line read it; only the arbiter changes it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Collection
from typing import Any

import psutil

from supervisor import config, health
from supervisor.policy import RestartTracker, State

# Requested stops after which the worker is replaced with a backoff, as after a crash:
# it was judged unhealthy (start_timeout, heartbeat_timeout, max_rss_mb).
RECYCLES = frozenset({"start_timeout", "heartbeat_timeout", "max_rss_mb"})


@dataclasses.dataclass(eq=False)
class WorkerRecord:
    """One live worker process, as the parent tracks it."""

    manager: str
    worker_id: int
    pid: int
    beacon: health.Beacon
    forked_at: float
    settled: bool = False  # ready and past start_secs: its exit is no failed start
    stop_reason: str | None = None  # set when the supervisor asked it to stop
    kill_at: float | None = None  # SIGKILL deadline of a requested stop

    @property
    def label(self) -> str:
        return f"{self.manager} worker({self.worker_id}) pid {self.pid}"

    @property
    def ready(self) -> bool:
        return self.beacon.read().ready


@dataclasses.dataclass(eq=False)
class ManagerRecord:
    """One configured manager: its spec, its restart tracker, what it last did."""

    spec: config.ManagerSpec
    tracker: RestartTracker
    last_exit: str = "-"
    state: State = State.STARTING
    removing: bool = False  # dropped from enabled_managers; its workers are stopping
    stopped: bool = False  # `mgr-supervisorctl stop NAME`: no worker until started again
    restarts: int = 0
    started_ids: set[int] = dataclasses.field(default_factory=set)
    rolling: list[int] = dataclasses.field(default_factory=list)  # ids a restart will replace
    rolled: int | None = None  # the id a rolling restart waits on to be ready again


class Table:
    """Every manager and worker the supervisor runs."""

    def __init__(self) -> None:
        self.workers: dict[int, WorkerRecord] = {}
        self.managers: dict[str, ManagerRecord] = {}

    def workers_of(self, name: str) -> list[WorkerRecord]:
        """A manager's workers, highest worker id first (the order a shrink stops them)."""
        return sorted(
            (r for r in self.workers.values() if r.manager == name), key=lambda r: -r.worker_id
        )

    def missing_ids(self, tracked: ManagerRecord) -> list[int]:
        if tracked.removing or tracked.stopped:
            return []
        running = {r.worker_id for r in self.workers_of(tracked.spec.name)}
        return [i for i in range(tracked.spec.workers) if i not in running]

    def ready_count(self, tracked: ManagerRecord) -> int:
        return sum(
            1
            for r in self.workers_of(tracked.spec.name)
            if r.stop_reason is None and r.worker_id < tracked.spec.workers and r.ready
        )

    def state_of(self, name: str, now: float, stopping: bool) -> State:
        """RUNNING only when every wanted worker runs, is ready and lived past start_secs."""
        tracked = self.managers[name]
        if stopping or tracked.removing:
            return State.STOPPING
        if tracked.stopped:
            return State.STOPPING if self.workers_of(name) else State.STOPPED
        if tracked.tracker.fatal:
            return State.FATAL
        missing = self.missing_ids(tracked)
        if missing and not tracked.tracker.may_start(now):
            return State.BACKOFF
        mine = self.workers_of(name)
        if missing or not all(r.settled for r in mine):
            return State.STARTING
        return State.RUNNING

    def waiting_for_broker(self) -> int:
        """How many workers wait for the message broker before they can be ready."""
        return sum(
            1 for r in self.workers.values() if r.beacon.read().phase == health.WAITING_FOR_BROKER
        )

    def status(
        self, now: float, stopping: bool, names: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """Per manager (all, or those in `names`) its state and counts, then its workers."""
        managers = []
        for name, tracked in self.managers.items():
            if names is not None and name not in names:
                continue
            workers = sorted(self.workers_of(name), key=lambda r: r.worker_id)
            managers.append(
                {
                    "name": name,
                    "state": self.state_of(name, now, stopping).value,
                    "running": sum(1 for r in workers if r.stop_reason is None),
                    "wanted": 0 if tracked.removing or tracked.stopped else tracked.spec.workers,
                    "restarts": tracked.restarts,
                    "last_exit": tracked.last_exit,
                    "workers": [worker_status(r, now) for r in workers],
                }
            )
        return managers


def worker_status(record: WorkerRecord, now: float) -> dict[str, Any]:
    beacon = record.beacon.read()
    rss_mb: float | None = None
    process_state = "gone"
    try:
        process = psutil.Process(record.pid)
        with process.oneshot():
            rss_mb = process.memory_info().rss / 2**20
            process_state = process.status()
    except psutil.Error:
        pass
    return {
        "worker_id": record.worker_id,
        "pid": record.pid,
        "phase": beacon.phase,
        "ready": beacon.ready,
        "process_state": process_state,
        "uptime": now - record.forked_at,
        "rss_mb": rss_mb,
        "heartbeat_age": now - beacon.phase_since,
        "stopping": record.stop_reason,
        "rpc": beacon.rpc,
        "rpc_served": beacon.rpc_served,
        "rpc_failed": beacon.rpc_failed,
    }


def describe_exit(wait_status: int) -> str:
    """ "exit status N" or "signal SIGNAME", from a waitpid() status."""
    if os.WIFEXITED(wait_status):
        return f"exit status {os.WEXITSTATUS(wait_status)}"
    number = os.WTERMSIG(wait_status)
    try:
        return f"signal {signal.Signals(number).name}"
    except ValueError:
        return f"signal {number}"
