"""The parent's decisions, as functions over the `Table` (docs/architecture.md, "The
parent's loop").

Each one reads and updates the table's records (plain data) and returns what must happen:
which workers to stop and why, which to reset, what to log. None of them forks, signals,
sleeps or reads a clock; the arbiter passes `now` in and performs what comes back. So every
rule of the restart policy, a reload and a rolling restart is tested without a process
(tests/unit/test_decisions.py), as gunicorn tests its arbiter and cotyledon its
`_adjust_workers`.
"""

from __future__ import annotations

import dataclasses
import enum
import logging

from supervisor import config
from supervisor.policy import RETRY_FOREVER, RestartTracker
from supervisor.table import ManagerRecord, StopReason, Table, WorkerRecord


@dataclasses.dataclass(frozen=True)
class Stop:
    """Ask one worker to stop gracefully (SIGKILL at the graceful deadline)."""

    record: WorkerRecord
    reason: StopReason
    problem: str  # what the log line says: "manager removed", "RSS 612.0 MiB over ..."


class Outcome(enum.Enum):
    """What a worker's exit leads to."""

    STOPPED = "stopped"  # the supervisor asked, for good: nothing follows
    RESTARTED = "restarted"  # it had settled: started again at once
    FAILED_START = "failed start"  # started again after the backoff
    RECYCLED = "recycled"  # judged unhealthy: started again after the backoff
    FATAL = "fatal"  # no more starts until a reload, `start` or `restart`


@dataclasses.dataclass(frozen=True)
class Exit:
    """A worker's exit, classified, with the line the arbiter logs."""

    outcome: Outcome
    level: int
    message: str


@dataclasses.dataclass
class Reconciliation:
    """A reload's changes to the running managers."""

    reset: list[WorkerRecord] = dataclasses.field(default_factory=list)  # SIGHUP: mutate
    stop: list[Stop] = dataclasses.field(default_factory=list)
    added: list[config.ManagerSpec] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)  # logged, one line each


def settles(tracked: ManagerRecord, record: WorkerRecord, ready: bool, now: float) -> bool:
    """The one failed-start rule: a worker that was ready and lived `start_secs` has settled,
    so its exit is no failed start (and its manager's count starts over)."""
    return record.settled or (ready and now - record.forked_at >= tracked.spec.policy.start_secs)


def classify_exit(table: Table, record: WorkerRecord, status: str, now: float) -> Exit:
    """A reaped worker: take it off the table, count it, and say what follows."""
    del table.workers[record.pid]
    tracked = table.managers[record.manager]
    was_ready = record.ready
    settled = settles(tracked, record, was_ready, now)
    tracked.retire(record)
    tracked.last_exit = status
    lifetime = now - record.forked_at
    reason = record.stop_reason
    if reason is not None and not reason.recycles:
        forget_if_gone(table, tracked)
        return Exit(
            Outcome.STOPPED, logging.INFO, f"{record.label} stopped ({reason.value}), {status}"
        )
    recycled = reason is not None and settled
    failed = not settled or recycled
    tracked.record_exit(now, failed)
    tracker = tracked.tracker
    if tracker.fatal:
        return Exit(
            Outcome.FATAL,
            logging.ERROR,
            f"manager {record.manager} is FATAL: {tracker.in_a_row} failed starts in a "
            f"row, the last {status}; no more restarts until a reload, or mgr-supervisorctl "
            "start or restart",
        )
    if recycled:
        assert reason is not None
        return Exit(
            Outcome.RECYCLED,
            logging.INFO,
            f"{record.label} stopped ({reason.value}), {status}; next start in "
            f"{tracker.delay():.1f}s",
        )
    if failed:
        retries = tracked.spec.policy.start_retries
        fatal_after = "never FATAL" if retries == RETRY_FOREVER else f"FATAL after {retries + 1}"
        return Exit(
            Outcome.FAILED_START,
            logging.WARNING,
            f"{record.label} {status} after {lifetime:.2f}s"
            f"{'' if was_ready else ', never ready'}: failed start {tracker.in_a_row} "
            f"({fatal_after}); next start in {tracker.delay():.1f}s",
        )
    return Exit(
        Outcome.RESTARTED,
        logging.WARNING,
        f"{record.label} {status} after {lifetime:.1f}s; restarting it",
    )


def forget_if_gone(table: Table, tracked: ManagerRecord) -> None:
    """A removed manager is forgotten once its last worker has exited."""
    if tracked.removing and not table.workers_of(tracked.spec.name):
        del table.managers[tracked.spec.name]


def settle(table: Table, now: float) -> None:
    """Workers that settled since the last pass reset their manager's failed starts."""
    for record in table.workers.values():
        if record.settled:
            continue
        tracked = table.managers[record.manager]
        if settles(tracked, record, record.ready, now):
            record.settled = True
            tracked.tracker.record_settled()


# -- a reload


def reconcile(table: Table, specs: list[config.ManagerSpec]) -> Reconciliation:
    """Bring the managers in line with a validated reload: add, remove, resize, replace;
    every other worker is reset in place."""
    result = Reconciliation()
    for spec in specs:
        _reconcile_one(table, spec, result)
    wanted = {spec.name for spec in specs}
    for name, tracked in table.managers.items():
        if name not in wanted and not tracked.removing:
            result.notes.append(f"manager {name} removed, stopping its workers")
            tracked.removing = True
            for record in table.workers_of(name):
                result.stop.append(Stop(record, StopReason.REMOVED, "manager removed"))
    return result


def _reconcile_one(table: Table, spec: config.ManagerSpec, result: Reconciliation) -> None:
    tracked = table.managers.get(spec.name)
    if tracked is None:
        result.notes.append(f"manager {spec.name} added")
        result.added.append(spec)
        return
    old = tracked.spec
    tracked.spec = spec
    tracked.tracker = RestartTracker(spec.policy)  # a reload clears FATAL
    tracked.stopped = False  # and `mgr-supervisorctl stop NAME`
    identity = (spec.manager_class, spec.topic, spec.db_driver)
    if tracked.removing or identity != (old.manager_class, old.topic, old.db_driver):
        result.notes.append(
            f"manager {spec.name} now runs {config.dotted_name(spec.manager_class)} "
            f"(topic {spec.topic!r}, db_driver {spec.db_driver}), restarting it"
        )
        tracked.removing = False
        for record in table.workers_of(spec.name):
            if record.stop_reason is None:
                result.stop.append(Stop(record, StopReason.REPLACED, "manager class changed"))
        return
    if spec.workers != old.workers:
        result.notes.append(f"manager {spec.name}: {old.workers} -> {spec.workers} worker(s)")
    for record in table.workers_of(spec.name):
        if record.stop_reason is not None:
            continue
        if record.worker_id >= spec.workers:
            result.stop.append(Stop(record, StopReason.SCALED_DOWN, "no longer wanted"))
        else:
            result.reset.append(record)


# -- mgr-supervisorctl stop, start and restart NAME


def stop_manager(table: Table, tracked: ManagerRecord) -> list[Stop]:
    """STOPPED until `start`, `restart` or a reload: neither a failure nor a reason to back
    off. A worker already being recycled stops for good instead."""
    if tracked.stopped:
        return []
    tracked.stopped = True
    tracked.tracker.clear()
    tracked.rolling, tracked.rolled = [], None
    stops = []
    for record in table.workers_of(tracked.spec.name):
        if record.stop_reason is None:
            stops.append(Stop(record, StopReason.STOP_REQUESTED, "stop requested"))
        elif record.stop_reason.recycles:  # its exit is no failed start any more
            record.stop_reason = StopReason.STOP_REQUESTED
    return stops


def start_manager(tracked: ManagerRecord) -> bool:
    """A STOPPED or FATAL manager starts again now, with a fresh count; False: it ran."""
    if not tracked.stopped and not tracked.tracker.fatal:
        return False
    tracked.stopped = False
    tracked.tracker.clear()
    return True


def restart_manager(table: Table, tracked: ManagerRecord, all_at_once: bool) -> list[Stop]:
    """Forgive FATAL and STOPPED; replace every worker: all now, or one at a time (the
    rolling restart `advance_restarts` drives)."""
    tracked.tracker.clear()
    tracked.stopped = False
    current = [r for r in table.workers_of(tracked.spec.name) if r.stop_reason is None]
    if all_at_once:
        return [Stop(r, StopReason.RESTART_REQUESTED, "restart requested") for r in current]
    tracked.rolling = sorted(r.worker_id for r in current)
    tracked.rolled = None
    return []


def advance_restarts(table: Table) -> list[Stop]:
    """A rolling restart stops the next old worker once the last replacement is ready."""
    stops = []
    for tracked in table.managers.values():
        if tracked.tracker.fatal or tracked.removing:
            tracked.rolling, tracked.rolled = [], None
        if tracked.rolled is not None:
            if not _is_ready(table, tracked.spec.name, tracked.rolled):
                continue
            tracked.rolled = None
        if tracked.rolling:
            tracked.rolled = tracked.rolling.pop(0)
            for record in table.workers_of(tracked.spec.name):
                if record.worker_id == tracked.rolled and record.stop_reason is None:
                    stops.append(Stop(record, StopReason.RESTART_REQUESTED, "restart requested"))
    return stops


def _is_ready(table: Table, name: str, worker_id: int) -> bool:
    return any(
        r.worker_id == worker_id and r.stop_reason is None and r.ready
        for r in table.workers_of(name)
    )


# -- what is due


def due_starts(table: Table, now: float) -> list[tuple[ManagerRecord, int]]:
    """The (manager, worker id) pairs to fork now: missing, and past any backoff."""
    return [
        (tracked, worker_id)
        for tracked in list(table.managers.values())
        if tracked.tracker.may_start(now)
        for worker_id in table.missing_ids(tracked)
    ]


def due_kills(table: Table, now: float) -> list[WorkerRecord]:
    """Workers past their graceful deadline: SIGKILL them (once: the deadline is cleared)."""
    late = [r for r in table.workers.values() if r.kill_at is not None and now >= r.kill_at]
    for record in late:
        record.kill_at = None
    return late


def every_manager_fatal(table: Table) -> bool:
    """Nothing runs and nothing will: the supervisor exits 1."""
    managers = table.managers.values()
    return bool(managers) and all(m.tracker.fatal for m in managers) and not table.workers
