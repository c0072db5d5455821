"""The measurements: one launch of a target for startup, memory, idle, restart, reload and
stop, and a second launch whose parent is SIGKILLed.

Memory is read twice in the first launch: fresh, right after startup, and steady, once every
worker has run the one full collection it runs COLLECT_DELAY_SECONDS after `ready`
(benchmarks/report.py), as a worker that lives for hours would.

Each measurement starts from a mark in the probe's events and waits, with a timeout, for the
workers' datagrams; a timeout leaves that figure (and the rest of the launch) empty, with a
note saying what was missing. The steady memory is the exception: without it the launch goes
on, as nothing after it depends on it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import psutil

from benchmarks import procs
from benchmarks.probe import Event, Probe, first_by_pid, nth
from benchmarks.report import COLLECT_DELAY_SECONDS
from benchmarks.targets import Target

SETTLE_SECONDS = 1.0  # after startup, before the idle window
PAUSE_SECONDS = 0.5  # between two measurements, so the tail of one does not overlap the next
IDLE_SECONDS = 10.0
SURVIVAL_SECONDS = 2.0
RESTART_TIMEOUT = 15.0
RELOAD_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
COLLECT_TIMEOUT = COLLECT_DELAY_SECONDS + 15.0  # counted from the end of the idle window


def startup_timeout(workers: int) -> float:
    return 20.0 + 0.25 * workers


@dataclasses.dataclass
class Result:
    """One run of one target with N workers; None where the measurement did not complete."""

    startup: float | None = None
    idle_cpu: float | None = None
    idle_runtime: float | None = None
    pss_mib: float | None = None  # parent + every descendant, fresh
    uss_mib: float | None = None  # median over the workers, fresh
    pss_steady_mib: float | None = None  # after one full collection in each worker
    uss_steady_mib: float | None = None
    helpers_pss_steady_mib: float | None = None  # the part of pss_steady_mib no worker holds
    restart: float | None = None
    reload: float | None = None
    stop: float | None = None
    exit_status: int | None = None
    orphans: int | None = None
    survivors: int | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


class Memory(NamedTuple):
    """One reading, in MiB."""

    tree_pss: float
    worker_uss: float | None
    helpers_pss: float


class Incomplete(Exception):
    """A measurement timed out; the rest of that launch is skipped."""


def measure(target_cls: type[Target], workers: int, probe: Probe, workdir: Path) -> Result:
    """Both launches of one target; every process is killed before this returns."""
    result = Result()
    for scenario in (_lifecycle, _parent_kill):
        target = target_cls(workdir)
        try:
            scenario(target, workers, probe, result)
        except Incomplete as exc:
            result.notes.append(f"{exc}; log kept at {target.keep_log()}")
        finally:
            if target.process is not None and target.process.poll() is None:
                target.kill()
            target.close()
            procs.kill_all()
            target.discard()
    return result


def _lifecycle(target: Target, workers: int, probe: Probe, result: Result) -> None:
    since = probe.mark()
    launched = time.monotonic()
    target.start(workers, probe.address)
    ready = _wait_ready(target, probe, since, workers)
    result.startup = max(ready.values()) - launched

    time.sleep(SETTLE_SECONDS)
    parent = psutil.Process(target.pid)
    result.pss_mib, result.uss_mib, _ = _memory(target, parent)
    _, events = probe.wait(since, lambda evs: None, 0)  # those received so far
    early = _collected(events, ready)
    if early:
        result.notes.append(f"fresh memory: {len(early)} worker(s) had already collected")
    before, before_ns = parent.cpu_times(), procs.runtime_ns(target.pid)
    time.sleep(IDLE_SECONDS)
    after, after_ns = parent.cpu_times(), procs.runtime_ns(target.pid)
    result.idle_cpu = (after.user + after.system) - (before.user + before.system)
    result.idle_runtime = (after_ns - before_ns) / 1e9
    _steady_memory(target, parent, probe, since, ready, result)

    known = set(ready)
    victim = min(ready, key=ready.__getitem__)
    result.restart = timed(
        probe,
        lambda: _kill(victim),
        lambda events: nth(first_by_pid(events, "ready", (target.pid, *known)), 1),
        RESTART_TIMEOUT,
        "restart: no replacement worker ready",
    )
    time.sleep(PAUSE_SECONDS)

    known |= {p.pid for p in target.workers()}

    def reloaded(events: Sequence[Event]) -> float | None:
        """Each worker reset in place or replaced by a new one that is ready."""
        resets = first_by_pid(events, "reset", (target.pid,))
        fresh = first_by_pid(events, "ready", (target.pid, *known))
        return nth({**resets, **fresh}, workers)

    try:
        result.reload = timed(
            probe,
            target.reload,
            reloaded,
            RELOAD_TIMEOUT,
            "reload: not every worker reset or ready",
        )
    except Incomplete as exc:
        # Still stop it, for the orphan count, but a stop during a reload is not timed.
        result.notes.append(f"{exc} within {RELOAD_TIMEOUT:.0f}s; stop not timed")
    time.sleep(PAUSE_SECONDS)
    _stop(target, probe, result, timed=result.reload is not None)


def _stop(target: Target, probe: Probe, result: Result, timed: bool) -> None:
    """SIGTERM: until the parent has exited and every worker running then cleaned up."""
    running = {p.pid for p in target.workers()}
    since = probe.mark()
    signalled = time.monotonic()
    target.stop()
    exited = procs.wait_exit(target.pidfd, STOP_TIMEOUT)
    cleaned, events = probe.wait(
        since,
        lambda evs: nth(first_by_pid(evs, "cleanup", (target.pid,)), len(running)),
        max(0.0, signalled + STOP_TIMEOUT - time.monotonic()),
    )
    result.orphans = len(procs.descendants())
    if exited is None:
        raise Incomplete(f"stop: parent still running {STOP_TIMEOUT:.0f}s after SIGTERM")
    result.exit_status = target.close()
    if cleaned is None:
        missing = running - set(first_by_pid(events, "cleanup"))
        raise Incomplete(f"stop: {len(missing)}/{len(running)} workers never reported cleanup")
    if timed:
        result.stop = max(exited, cleaned) - signalled


def _parent_kill(target: Target, workers: int, probe: Probe, result: Result) -> None:
    """SIGKILL the parent: how many workers are still alive SURVIVAL_SECONDS later."""
    since = probe.mark()
    target.start(workers, probe.address)
    _wait_ready(target, probe, since, workers)
    time.sleep(PAUSE_SECONDS)
    orphaned = target.descendants()
    target.kill()
    procs.wait_exit(target.pidfd, STOP_TIMEOUT)
    time.sleep(SURVIVAL_SECONDS)
    result.survivors = len(procs.alive(orphaned))


def _wait_ready(target: Target, probe: Probe, since: int, workers: int) -> dict[int, float]:
    """Every worker's first `ready`, once `workers` of them have come."""
    met, events = probe.wait(
        since,
        lambda evs: nth(first_by_pid(evs, "ready", (target.pid,)), workers),
        startup_timeout(workers),
    )
    ready = first_by_pid(events, "ready", (target.pid,))
    if met is None:
        raise Incomplete(f"startup: {len(ready)}/{workers} workers ready before the timeout")
    return dict(sorted(ready.items(), key=lambda item: item[1])[:workers])


def _collected(events: Sequence[Event], ready: dict[int, float]) -> dict[int, float]:
    """When each of the `ready` workers reported `collected`, of those that did."""
    return {p: at for p, at in first_by_pid(events, "collected").items() if p in ready}


def _steady_memory(
    target: Target,
    parent: psutil.Process,
    probe: Probe,
    since: int,
    ready: dict[int, float],
    result: Result,
) -> None:
    """Once every worker has run its full collection: the memory figures again.

    Workers that never report it leave the steady figures empty and a note; the launch
    goes on, since nothing else depends on them.
    """
    met, events = probe.wait(
        since, lambda evs: nth(_collected(evs, ready), len(ready)), COLLECT_TIMEOUT
    )
    if met is None:
        done = len(_collected(events, ready))
        result.notes.append(
            f"steady memory: {done}/{len(ready)} workers reported collected within "
            f"{COLLECT_TIMEOUT:.0f}s after the idle window; log kept at {target.keep_log()}"
        )
        return
    memory = _memory(target, parent)
    result.pss_steady_mib, result.uss_steady_mib, result.helpers_pss_steady_mib = memory


def timed(
    probe: Probe,
    action: Callable[[], None],
    until: Callable[[Sequence[Event]], float | None],
    timeout: float,
    failure: str,
) -> float:
    """Seconds from `action()` to the moment `until` reports."""
    since = probe.mark()
    started = time.monotonic()
    action()
    met, _ = probe.wait(since, until, timeout)
    if met is None:
        raise Incomplete(failure)
    return met - started


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _memory(target: Target, parent: psutil.Process) -> Memory:
    """PSS of the parent and all its descendants (USS would hide the shared pages), the
    median USS of one worker, and the PSS of the helpers (mgr-supervisor's recorder), which
    the tree's figure includes and the per-worker one leaves out."""
    workers = {p.pid for p in target.workers()}
    pss, helpers_pss, uss = 0, 0, []
    for process in [parent, *parent.children(recursive=True)]:
        try:
            info = process.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        pss += info.pss
        if process.pid in workers:
            uss.append(info.uss)
        elif process.pid != parent.pid and target.is_helper(process):
            helpers_pss += info.pss
    return Memory(pss / 2**20, statistics.median(uss) / 2**20 if uss else None, helpers_pss / 2**20)
