"""What runs: the parent's records of managers and workers, and the states derived from them.

Plain data owned by the arbiter's loop (one thread, so no lock). `status`, systemd's
STATUS line and the HTTP endpoint (`/healthz`, `/metrics`) read it; only the arbiter changes
it. The counters Prometheus reads (restarts, failed starts, reloads, RPC calls) live here, so
they outlive the tracker a reload replaces and the workers that exit.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import signal
import time
from collections.abc import Collection
from typing import Any

from supervisor import config, health
from supervisor.policy import RestartTracker, State


class StopReason(enum.Enum):
    """Why the supervisor asked a worker to stop; the value is what logs and status say."""

    STOPPING = "stopping"  # the supervisor stops
    REMOVED = "removed"  # its manager left enabled_managers
    REPLACED = "replaced"  # its manager's class, topic or db_driver changed
    SCALED_DOWN = "scaled down"
    STOP_REQUESTED = "stop requested"
    RESTART_REQUESTED = "restart requested"
    START_TIMEOUT = "start_timeout"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    MAX_RSS_MB = "max_rss_mb"

    @property
    def recycles(self) -> bool:
        """Judged unhealthy: replaced with a backoff, as after a crash."""
        return self in (
            StopReason.START_TIMEOUT,
            StopReason.HEARTBEAT_TIMEOUT,
            StopReason.MAX_RSS_MB,
        )


@dataclasses.dataclass(eq=False)
class WorkerRecord:
    """One live worker process, as the parent tracks it."""

    manager: str
    worker_id: int
    pid: int
    beacon: health.Beacon
    forked_at: float
    settled: bool = False  # ready and past start_secs: its exit is no failed start
    stop_reason: StopReason | None = None  # set when the supervisor asked it to stop
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
    failed_starts_total: int = 0  # since the manager was added: a counter, never reset
    # Since when it has not been RUNNING (None while it is): since it was added, at first.
    unready_since: float | None = dataclasses.field(default_factory=time.monotonic)
    rpc_served_gone: int = 0  # RPC calls served, failed, rejected by its workers that exited
    rpc_failed_gone: int = 0
    rpc_rejected_gone: int = 0

    def record_exit(self, now: float, failed_start: bool) -> None:
        """A worker ended without the supervisor asking (or a fork failed): counted, and
        the restart policy decides the next start."""
        self.failed_starts_total += failed_start
        self.tracker.record_exit(now, failed_start)

    def retire(self, record: WorkerRecord) -> None:
        """A worker exited: its RPC counts stay in the manager's totals."""
        snapshot = record.beacon.read()
        self.rpc_served_gone += snapshot.rpc_served
        self.rpc_failed_gone += snapshot.rpc_failed
        self.rpc_rejected_gone += snapshot.rpc_rejected

    def note_state(self, state: State, now: float) -> None:
        """The loop saw the manager's state change: when it stopped being RUNNING (a manager
        STOPPED on request is not "not ready": it serves nothing, as asked)."""
        if state in (State.RUNNING, State.STOPPED):
            self.unready_since = None
        elif self.unready_since is None:
            self.unready_since = now


@dataclasses.dataclass
class Reloads:
    """SIGHUPs (and `mgr-supervisorctl reload`) handled: applied, rejected, the last one."""

    applied: int = 0
    rejected: int = 0  # an invalid config, files changed meanwhile, or failed to apply
    last_at: float | None = None  # wall-clock time (time.time()) of the last reload
    last_ok: bool | None = None

    def count(self, ok: bool) -> None:
        if ok:
            self.applied += 1
        else:
            self.rejected += 1
        self.last_at = time.time()
        self.last_ok = ok


class Table:
    """Every manager and worker the supervisor runs."""

    def __init__(self) -> None:
        self.workers: dict[int, WorkerRecord] = {}
        self.managers: dict[str, ManagerRecord] = {}
        self.reloads = Reloads()

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
            state = self.state_of(name, now, stopping)
            shown = [worker_status(r, now, tracked.spec.limits) for r in workers]
            unready = tracked.unready_since
            managers.append(
                {
                    "name": name,
                    "state": state.value,
                    "running": sum(1 for r in workers if r.stop_reason is None),
                    "wanted": 0 if tracked.removing or tracked.stopped else tracked.spec.workers,
                    # As ready_count counts, from the beacons read once above.
                    "ready": sum(
                        1
                        for w in shown
                        if w["ready"]
                        and not w["stopping"]
                        and w["worker_id"] < tracked.spec.workers
                    ),
                    "restarts": tracked.restarts,
                    "failed_starts": tracked.failed_starts_total,
                    "last_exit": tracked.last_exit,
                    "not_ready_for": 0.0
                    if state in (State.RUNNING, State.STOPPED) or unready is None
                    else now - unready,
                    "rpc_served": tracked.rpc_served_gone + sum(w["rpc_served"] for w in shown),
                    "rpc_failed": tracked.rpc_failed_gone + sum(w["rpc_failed"] for w in shown),
                    "rpc_rejected": tracked.rpc_rejected_gone
                    + sum(w["rpc_rejected"] for w in shown),
                    "workers": shown,
                }
            )
        return managers


def worker_status(
    record: WorkerRecord, now: float, limits: health.HealthLimits | None = None
) -> dict[str, Any]:
    """One worker as status shows it; `problem`: why the health check would recycle it."""
    beacon = record.beacon.read()
    process_state, rss = proc_stat(record.pid)
    problem = None
    if limits is not None and record.stop_reason is None:
        problem = health.check(limits, beacon, now - record.forked_at, now)
    return {
        "worker_id": record.worker_id,
        "pid": record.pid,
        "phase": beacon.phase,
        "ready": beacon.ready,
        "process_state": process_state,
        "uptime": now - record.forked_at,
        "rss_mb": None if rss is None else rss / 2**20,
        "heartbeat_age": now - beacon.phase_since,
        "stopping": None if record.stop_reason is None else record.stop_reason.value,
        "problem": problem,
        "rpc": beacon.rpc,
        "rpc_served": beacon.rpc_served,
        "rpc_failed": beacon.rpc_failed,
        "rpc_rejected": beacon.rpc_rejected,
    }


# /proc/PID/stat's state letters, named as psutil names them on Linux: the JSON status's
# `process_state` says what psutil would.
_PROCESS_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "disk-sleep",
    "T": "stopped",
    "t": "tracing-stop",
    "Z": "zombie",
    "X": "dead",
    "x": "dead",
    "K": "wake-kill",
    "W": "waking",
    "I": "idle",
    "P": "parked",
}
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def proc_stat(pid: int) -> tuple[str, int | None]:
    """(state, RSS in bytes) from one read of /proc/PID/stat; ("gone", None) if it is gone.

    One read, not psutil's several: /metrics reads every worker at each scrape, where
    psutil's reads would cost ~15 ms at 256 workers.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return "gone", None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return "gone", None
    finally:
        os.close(fd)
    end = data.rfind(b")")  # "PID (comm) S ...": the fields from 3 (state) to 24 (rss)
    fields = data[end + 2 :].split(b" ", 22)
    state = chr(data[end + 2])
    return _PROCESS_STATES.get(state, state), int(fields[21]) * _PAGE_SIZE


def describe_exit(wait_status: int) -> str:
    """ "exit status N" or "signal SIGNAME", from a waitpid() status."""
    if os.WIFEXITED(wait_status):
        return f"exit status {os.WEXITSTATUS(wait_status)}"
    number = os.WTERMSIG(wait_status)
    try:
        return f"signal {signal.Signals(number).name}"
    except ValueError:
        return f"signal {number}"
