"""The parent process: cotyledon's `ServiceManager`, corrected at its seams.

cotyledon gives us the process plumbing (signal pipe, `run()`'s main loop, the child-death
pipe, `add()`, fork through multiprocessing). Two threads, as in cotyledon, and a third that
answers the control socket under the same lock:

- the **main thread** reads signals and dispatches `handle_<signal>`; a SIGHUP is validated
  here and handed over; a stop is run here once the supervision thread has finished;
- the **supervision thread** (`_child_supervisor_thread`, the only thread that forks, so
  PR_SET_PDEATHSIG fires only when the parent dies) owns the worker table. It sleeps on a
  wake-up pipe until its next deadline, then runs one pass (`_supervise_once`).

Overrides of cotyledon, each with a test that fails without it (see README):
`_on_signal_received`, `_reload`, `_shutdown`, `_start_worker`,
`_child_supervisor_thread` (per-manager restart policy instead of one global 5 s sleep,
and a worker that was asked to stop stays stopped).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing.connection
import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import cotyledon
import psutil
from cotyledon import _utils
from cotyledon import types as cotyledon_types
from oslo_config import cfg

from supervisor import config, control, health, process, snapshot, systemd
from supervisor.policy import RestartTracker, State
from supervisor.worker import FORWARDED_SIGNALS, ManagerService, ManagerWorker

LOG = logging.getLogger(__name__)

# How often the parent looks at beacons and RSS, when some manager sets a limit.
HEALTH_CHECK_INTERVAL = 1.0


@dataclasses.dataclass(eq=False)
class WorkerRecord:
    """One live worker process, as the parent tracks it."""

    manager: str
    worker_id: int
    process: multiprocessing.Process
    beacon: health.Beacon
    forked_at: float
    settled: bool = False  # lived past start_secs
    stop_reason: str | None = None  # set when the supervisor asked it to stop
    kill_at: float | None = None  # SIGKILL deadline of a requested stop

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    @property
    def label(self) -> str:
        return f"{self.manager} worker({self.worker_id}) pid {self.pid}"


@dataclasses.dataclass(eq=False)
class ManagerRecord:
    """One configured manager: its spec, its restart tracker, its cotyledon service."""

    spec: config.ManagerSpec
    service_id: cotyledon_types.ServiceId
    tracker: RestartTracker
    last_exit: str = "-"
    state: State = State.STARTING
    removing: bool = False  # dropped from enabled_managers; its workers are stopping
    restarts: int = 0
    started_ids: set[int] = dataclasses.field(default_factory=set)


def _worker_status(record: WorkerRecord, now: float) -> dict[str, Any]:
    snapshot = record.beacon.read()
    try:
        rss_mb: float | None = psutil.Process(record.pid).memory_info().rss / 2**20
    except psutil.NoSuchProcess:
        rss_mb = None
    return {
        "worker_id": record.worker_id,
        "pid": record.pid,
        "phase": snapshot.phase,
        "ready": snapshot.ready,
        "uptime": now - record.forked_at,
        "rss_mb": rss_mb,
        "heartbeat_age": now - snapshot.phase_since,
        "stopping": record.stop_reason,
    }


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown status"
    if exitcode < 0:
        return f"signal {_utils.signal_to_name(-exitcode)}"
    return f"exit status {exitcode}"


class Arbiter(cotyledon.ServiceManager):
    """Runs every configured manager's workers and answers the signals of DESIGN.md."""

    def __init__(
        self, argv: Sequence[str], conf: cfg.ConfigOpts, specs: list[config.ManagerSpec]
    ) -> None:
        super().__init__(wait_interval=0, graceful_shutdown_timeout=conf.graceful_shutdown_timeout)
        _utils.set_process_title(f"{config.PROJECT}: master")
        try:
            os.makedirs(conf.state_path, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise config.ConfigError(
                f"[DEFAULT] state_path: cannot create {conf.state_path}: {exc.strerror}"
            ) from None
        if not process.become_subreaper():
            LOG.warning("could not become child subreaper; orphans go to init")
        self._argv = list(argv)
        self._conf = conf
        self._stopping = False
        self._exit_status = 0
        self._lock = threading.Lock()
        self._workers: dict[int, WorkerRecord] = {}
        self._managers: dict[str, ManagerRecord] = {}
        self._next_health_check = 0.0
        self._pending_reload: tuple[snapshot.Snapshot, list[config.ManagerSpec]] | None = None
        # Takes NOTIFY_SOCKET out of the environment before cotyledon's run() would say
        # READY=1 with no worker started; `_notify_systemd` says it when it is true.
        self._notifier = systemd.Notifier()
        self._announced_ready = False
        self._next_watchdog = 0.0
        # Written to by SIGCHLD, a reload, a stop, and by each worker when it is ready.
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._snapshots = snapshot.SnapshotStore(
            os.path.join(conf.state_path, "config-snapshot.json")
        )
        self._pending_restarts: set[str] = set()
        self._supervision_parked = threading.Event()
        self._started_at = time.monotonic()
        for spec in specs:
            self._add_manager(spec)
        # Last, once the tables it reads exist; still before anything is forked, so a second
        # supervisor on the same socket stops here.
        self._control = control.ControlServer(conf.supervisor.control_socket, self._on_control)
        self._snapshots.publish(snapshot.take(conf, specs))

    def _add_manager(self, spec: config.ManagerSpec) -> None:
        args = (spec, self._snapshots)
        service_id = self.add(ManagerService, workers=spec.workers, args=args)
        self._managers[spec.name] = ManagerRecord(spec, service_id, RestartTracker(spec.policy))
        LOG.info("manager %s: %s, %d worker(s)", spec.name, spec.manager_class, spec.workers)

    def _wake(self) -> None:
        """Make the supervision thread run a pass now."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"w")

    # -- signals (main thread): one dispatch table

    def _on_signal_received(self, sig: int) -> None:
        handler = {
            signal.SIGHUP: self.handle_hup,
            signal.SIGTERM: self.handle_term,
            signal.SIGINT: self.handle_int,
            signal.SIGCHLD: self._wake,
        }.get(sig)
        if handler is None:
            LOG.debug("ignoring signal %s", _utils.signal_to_name(sig))
        else:
            handler()

    def handle_hup(self) -> None:
        self._reload()

    def handle_term(self) -> None:
        self._shutdown()

    def handle_int(self) -> None:
        """The first SIGINT stops gracefully; `_wait_for_exit` answers a second one."""
        self._shutdown()

    # -- reload

    def _reload(self) -> None:
        """Validate a fresh copy of the config here; the supervision thread applies it.

        Nothing changes unless the whole config is valid. Reloads queue up as one: only
        the newest validated config is applied.
        """
        if self._stopping:
            return
        self._notifier.reloading()
        try:
            conf, specs = config.load(self._argv)
        except config.ConfigError as exc:
            LOG.error("reload rejected, still running on the old config: %s", exc)
            self._notifier.ready(f"reload rejected at {time.strftime('%H:%M:%S')}: {exc}")
            return
        with self._lock:
            self._pending_reload = (snapshot.take(conf, specs), specs)
        self._wake()

    # -- supervision thread: reap → health → start what is due

    def _child_supervisor_thread(self) -> None:
        try:
            running = True
            while running and not self._dead.is_set():
                select.select([self._wake_r], [], [], self._seconds_to_next_deadline())
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                if self._dead.is_set():
                    return
                try:
                    running = self._supervise_once()
                except Exception:
                    LOG.exception("internal error in the supervision loop: stopping")
                    self._request_exit(1)
                    return
        finally:
            self._supervision_parked.set()
            # Park, never return: PR_SET_PDEATHSIG fires when the thread that forked a
            # worker exits, and it must fire only when the parent itself dies.
            threading.Event().wait()

    def _supervise_once(self) -> bool:
        """One pass: reap, reload, overdue stops, health, settle, start, log states.

        Returns False once there is nothing left to supervise (every manager FATAL).
        """
        now = time.monotonic()
        with self._lock:
            self._reap(now)
            self._apply_pending_reload()
            self._apply_pending_restarts(now)
            self._enforce_kill_deadlines(now)
            self._check_health(now)
            self._settle(now)
            self._start_due_workers(now)
            self._log_state_changes(now)
            self._notify_systemd(now)
            all_fatal = all(m.tracker.fatal for m in self._managers.values())
            if self._managers and all_fatal and not self._workers:
                LOG.error("every manager is FATAL and no worker runs: exiting with status 1")
                self._request_exit(1)
                return False
        return True

    def _seconds_to_next_deadline(self) -> float | None:
        now = time.monotonic()
        with self._lock:
            deadlines = [
                tracked.tracker.not_before
                for tracked in self._managers.values()
                if not tracked.tracker.fatal and self._missing_ids(tracked)
            ]
            for record in self._workers.values():
                if record.kill_at is not None:
                    deadlines.append(record.kill_at)
                if not record.settled:
                    policy = self._managers[record.manager].spec.policy
                    deadlines.append(record.forked_at + policy.start_secs)
            if self._workers and self._health_limits_set():
                deadlines.append(self._next_health_check)
            if self._notifier.watchdog_interval:
                deadlines.append(self._next_watchdog)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _reap(self, now: float) -> None:
        for record in list(self._workers.values()):
            if not record.process.is_alive():
                self._on_worker_exit(record, now)
        process.reap_orphans(set(self._workers))

    def _apply_pending_reload(self) -> None:
        """Apply the config diff: add, remove, resize, replace managers; SIGHUP the rest.

        Workers are signalled first; the parent's own bookkeeping and logging come after.
        """
        if self._pending_reload is None:
            return
        snap, specs = self._pending_reload
        self._pending_reload = None
        self._snapshots.publish(snap)
        for spec in specs:
            config.adopt_manager_section(self._conf, spec)
        wanted = {spec.name for spec in specs}
        to_reset = [record for spec in specs for record in self._reconcile(spec)]
        for record in to_reset:
            process.signal_pid(record.pid, signal.SIGHUP)
        for name, tracked in self._managers.items():
            if name not in wanted and not tracked.removing:
                LOG.info("reload: manager %s removed, stopping its workers", name)
                tracked.removing = True
                for record in self._workers_of(name):
                    self._ask_to_stop(record, "removed", "manager removed", time.monotonic())
        for tracked in list(self._managers.values()):
            self._forget_if_gone(tracked)
        sections = ["DEFAULT", config.SUPERVISOR_GROUP, *(spec.section for spec in specs)]
        for change in snapshot.apply(self._conf, snap, sections, mutable_only=False):
            LOG.info("reload: %s", change)
        LOG.info("reload applied: SIGHUP to %d worker(s) to reset in place", len(to_reset))
        self._notifier.ready(f"reload applied at {time.strftime('%H:%M:%S')}")

    def _apply_pending_restarts(self, now: float) -> None:
        """`mgr-supervisorctl restart NAME`: forgive FATAL, replace every worker gracefully."""
        for name in self._pending_restarts:
            tracked = self._managers.get(name)
            if tracked is None:
                continue
            LOG.info("manager %s: restart requested", name)
            tracked.tracker.clear()
            for record in self._workers_of(name):
                if record.stop_reason is None:
                    self._ask_to_stop(record, "restart requested", "restart requested", now)
        self._pending_restarts.clear()

    def _reconcile(self, spec: config.ManagerSpec) -> list[WorkerRecord]:
        """Bring one manager in line with its new spec; return the workers to reset in place."""
        tracked = self._managers.get(spec.name)
        if tracked is None:
            LOG.info("reload: manager %s added", spec.name)
            self._add_manager(spec)
            return []
        now = time.monotonic()
        old = tracked.spec
        tracked.spec = spec
        tracked.tracker = RestartTracker(spec.policy)  # a reload clears FATAL
        self._services[tracked.service_id].args = (spec, self._snapshots)
        if tracked.removing or spec.manager_class is not old.manager_class:
            LOG.info("reload: manager %s now runs %s, restarting it", spec.name, spec.manager_class)
            tracked.removing = False
            for record in self._workers_of(spec.name):
                if record.stop_reason is None:
                    self._ask_to_stop(record, "replaced", "manager class changed", now)
            return []
        if spec.workers != old.workers:
            LOG.info("reload: manager %s: %d -> %d worker(s)", spec.name, old.workers, spec.workers)
        keep = []
        for record in self._workers_of(spec.name):
            if record.worker_id >= spec.workers:
                if record.stop_reason is None:
                    self._ask_to_stop(record, "scaled down", "no longer wanted", now)
            elif record.stop_reason is None:
                keep.append(record)
        return keep

    def _workers_of(self, name: str) -> list[WorkerRecord]:
        return sorted(
            (r for r in self._workers.values() if r.manager == name),
            key=lambda r: -r.worker_id,
        )

    def _on_worker_exit(self, record: WorkerRecord, now: float) -> None:
        del self._workers[record.pid]
        record.beacon.close()
        # Anything left in the worker's process group was orphaned by it: kill it.
        process.kill_group(record.pid)
        tracked = self._managers[record.manager]
        status = describe_exit(record.process.exitcode)
        tracked.last_exit = status
        lifetime = now - record.forked_at
        if record.stop_reason not in (None, "start_timeout"):
            LOG.info("%s stopped (%s), %s", record.label, record.stop_reason, status)
            self._forget_if_gone(tracked)
            return
        failed = record.stop_reason == "start_timeout" or tracked.tracker.is_failed_start(lifetime)
        tracked.tracker.record_exit(now, failed)
        policy = tracked.spec.policy
        if tracked.tracker.fatal:
            LOG.error(
                "manager %s is FATAL: %d failed starts in a row, the last %s; "
                "no more restarts until a reload",
                record.manager,
                tracked.tracker.failed_starts,
                status,
            )
        elif failed:
            LOG.warning(
                "%s %s after %.2fs: failed start %d (FATAL after %d); next start in %.1fs",
                record.label,
                status,
                lifetime,
                tracked.tracker.failed_starts,
                policy.start_retries + 1,
                tracked.tracker.delay(),
            )
        else:
            LOG.warning("%s %s after %.1fs; restarting it", record.label, status, lifetime)

    def _forget_if_gone(self, tracked: ManagerRecord) -> None:
        """A removed manager is forgotten once its last worker has exited."""
        if tracked.removing and not self._workers_of(tracked.spec.name):
            del self._managers[tracked.spec.name]
            del self._services[tracked.service_id]

    def _enforce_kill_deadlines(self, now: float) -> None:
        for record in self._workers.values():
            if record.kill_at is not None and now >= record.kill_at:
                LOG.warning(
                    "%s did not stop within graceful_shutdown_timeout: killing it and its "
                    "descendants",
                    record.label,
                )
                record.kill_at = None
                process.kill_trees([record.pid])

    def _health_limits_set(self) -> bool:
        return any(tracked.spec.limits.any for tracked in self._managers.values())

    def _check_health(self, now: float) -> None:
        if now < self._next_health_check or not self._health_limits_set():
            return
        self._next_health_check = now + HEALTH_CHECK_INTERVAL
        for record in list(self._workers.values()):
            limits = self._managers[record.manager].spec.limits
            if record.stop_reason is not None or not limits.any:
                continue
            snapshot = record.beacon.read()
            problem = health.check(limits, snapshot, now - record.forked_at, now)
            if problem:
                reason = "heartbeat_timeout" if snapshot.ready else "start_timeout"
                self._ask_to_stop(record, reason, problem, now)
            elif limits.max_rss_mb:
                self._check_rss(record, limits.max_rss_mb, now)

    def _check_rss(self, record: WorkerRecord, max_rss_mb: int, now: float) -> None:
        try:
            rss = psutil.Process(record.pid).memory_info().rss
        except psutil.NoSuchProcess:
            return
        if rss > max_rss_mb * 2**20:
            problem = f"RSS {rss / 2**20:.1f} MiB over max_rss_mb={max_rss_mb}"
            self._ask_to_stop(record, "max_rss_mb", problem, now)

    def _ask_to_stop(self, record: WorkerRecord, reason: str, problem: str, now: float) -> None:
        """Ask one worker to stop gracefully; SIGKILL it at the graceful deadline."""
        LOG.warning("%s: %s; stopping it", record.label, problem)
        record.stop_reason = reason
        timeout = self._conf.graceful_shutdown_timeout
        record.kill_at = now + timeout if timeout > 0 else None
        process.signal_pid(record.pid, signal.SIGTERM)

    def _settle(self, now: float) -> None:
        for record in self._workers.values():
            tracked = self._managers[record.manager]
            if not record.settled and now - record.forked_at >= tracked.spec.policy.start_secs:
                record.settled = True
                tracked.tracker.record_settled()

    def _missing_ids(self, tracked: ManagerRecord) -> list[int]:
        if tracked.removing:
            return []
        running = {r.worker_id for r in self._workers.values() if r.manager == tracked.spec.name}
        return [i for i in range(tracked.spec.workers) if i not in running]

    def _start_due_workers(self, now: float) -> None:
        for tracked in self._managers.values():
            if tracked.tracker.may_start(now):
                for worker_id in self._missing_ids(tracked):
                    self._start_worker(tracked, worker_id)

    def _log_state_changes(self, now: float) -> None:
        for name, tracked in self._managers.items():
            state = self.state_of(name, now)
            if state is not tracked.state:
                LOG.info("manager %s: %s -> %s", name, tracked.state.value, state.value)
                tracked.state = state

    def _notify_systemd(self, now: float) -> None:
        """READY=1 once every worker of every non-FATAL manager is ready; STATUS; WATCHDOG."""
        if self._notifier.watchdog_interval and now >= self._next_watchdog:
            self._notifier.watchdog()
            self._next_watchdog = now + self._notifier.watchdog_interval
        if not self._notifier.enabled:
            return
        ready_total = wanted_total = 0
        all_ready = True
        parts = []
        for name, tracked in self._managers.items():
            if tracked.removing:
                continue
            wanted = tracked.spec.workers
            ready = sum(
                1
                for r in self._workers.values()
                if r.manager == name
                and r.stop_reason is None
                and r.worker_id < wanted
                and r.beacon.read().ready
            )
            all_ready = all_ready and (tracked.tracker.fatal or ready == wanted)
            ready_total += ready
            wanted_total += wanted
            shown = tracked.state not in (State.RUNNING, State.STARTING)
            parts.append(f"{name} {ready}/{wanted}" + (f" {tracked.state.value}" if shown else ""))
        status = f"{ready_total}/{wanted_total} workers ready: {', '.join(parts)}"
        if all_ready and not self._announced_ready:
            self._announced_ready = True
            self._notifier.ready(status)
        else:
            self._notifier.status(status)

    def _request_exit(self, status: int) -> None:
        """From the supervision thread: have the main thread stop everything."""
        self._exit_status = status
        process.signal_pid(os.getpid(), signal.SIGTERM)

    def state_of(self, name: str, now: float | None = None) -> State:
        """The manager's state, derived from its tracker and its live workers."""
        now = time.monotonic() if now is None else now
        tracked = self._managers[name]
        if self._stopping or tracked.removing:
            return State.STOPPING
        if tracked.tracker.fatal:
            return State.FATAL
        missing = self._missing_ids(tracked)
        if missing and not tracked.tracker.may_start(now):
            return State.BACKOFF
        mine = [r for r in self._workers.values() if r.manager == name]
        if missing or not all(r.settled for r in mine):
            return State.STARTING
        return State.RUNNING

    # -- control socket (its own thread)

    def _on_control(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request["command"]
        if command == "status":
            return {"ok": True, "status": self.status()}
        if command == "restart":
            name = request.get("manager")
            with self._lock:
                tracked = self._managers.get(str(name))
                if tracked is None or tracked.removing:
                    return {"ok": False, "error": f"no manager named {name!r}"}
                self._pending_restarts.add(tracked.spec.name)
            self._wake()
            return {"ok": True}
        process.signal_pid(os.getpid(), signal.SIGHUP if command == "reload" else signal.SIGTERM)
        return {"ok": True}

    def status(self) -> dict[str, Any]:
        """What runs, for `mgr-supervisorctl status`: managers, then each worker."""
        now = time.monotonic()
        with self._lock:
            managers = []
            for name, tracked in self._managers.items():
                workers = sorted(self._workers_of(name), key=lambda r: r.worker_id)
                managers.append(
                    {
                        "name": name,
                        "state": self.state_of(name, now).value,
                        "running": sum(1 for r in workers if r.stop_reason is None),
                        "wanted": 0 if tracked.removing else tracked.spec.workers,
                        "restarts": tracked.restarts,
                        "last_exit": tracked.last_exit,
                        "workers": [_worker_status(r, now) for r in workers],
                    }
                )
        return {"pid": os.getpid(), "uptime": now - self._started_at, "managers": managers}

    # -- fork

    def _start_worker(self, tracked: ManagerRecord, worker_id: int) -> None:  # type: ignore[override]
        """Fork one worker; forwarded signals stay blocked until its handlers exist."""
        beacon = health.Beacon()
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        try:
            child = _utils.spawn_process(
                ManagerWorker.create_and_wait,
                self.mp_context,
                self._services[tracked.service_id],
                tracked.service_id,
                worker_id,
                self._death_detection_pipe,
                self._hooks["new_worker"],
                self._graceful_shutdown_timeout,
                beacon=beacon,
                parent_pid=os.getpid(),
                ready_fd=self._wake_w,
                snapshot_generation=self._snapshots.generation,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        assert child.pid is not None
        if worker_id in tracked.started_ids:
            tracked.restarts += 1
        tracked.started_ids.add(worker_id)
        with contextlib.suppress(OSError):
            os.setpgid(child.pid, child.pid)  # also in the child: whichever runs first
        self._workers[child.pid] = WorkerRecord(
            tracked.spec.name, worker_id, child, beacon, time.monotonic()
        )

    # -- stop (main thread, once the supervision thread has finished)

    def _shutdown(self) -> None:
        """Graceful stop: SIGTERM each worker, bounded by graceful_shutdown_timeout."""
        if self._stopping:
            return
        self._stopping = True
        timeout = self._conf.graceful_shutdown_timeout
        self._notifier.stopping()
        self._dead.set()
        self._wake()
        if self._child_supervisor is not None:
            self._supervision_parked.wait()
        workers = [record.process for record in self._workers.values()]
        LOG.info(
            "stopping: SIGTERM to %d worker(s) (graceful_shutdown_timeout=%ss)",
            len(workers),
            timeout,
        )
        self._run_hooks("terminate")
        for child in workers:
            process.signal_pid(child.pid, signal.SIGTERM)
        left = self._wait_for_exit(workers, timeout)
        if left:
            LOG.warning(
                "%d worker(s) still running after %ss: killing them and their descendants",
                len(left),
                timeout,
            )
            process.kill_trees(child.pid for child in left if child.pid is not None)
        self._reap_all(workers)
        self._control.close()
        self._snapshots.remove()
        LOG.info("stopped")
        # Skip the interpreter's finalization (25-45 ms with our imports): flush the logs
        # and go, as cotyledon's workers do.
        logging.shutdown()
        os._exit(self._exit_status)

    def _wait_for_exit(
        self, workers: list[multiprocessing.Process], timeout: float
    ) -> list[multiprocessing.Process]:
        """Wait for workers to exit; a second SIGINT cuts the wait short. Returns the rest."""
        deadline = time.monotonic() + timeout if timeout > 0 else None
        pending = {child.sentinel: child for child in workers}
        while pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            ready = multiprocessing.connection.wait(
                [*pending, self.signal_pipe_r], timeout=remaining
            )
            for handle in ready:
                if handle == self.signal_pipe_r:
                    if signal.SIGINT in self._read_signals():
                        LOG.warning("second SIGINT: stopping now")
                        return list(pending.values())
                else:
                    pending.pop(handle)
        return list(pending.values())

    def _read_signals(self) -> set[int]:
        try:
            return set(os.read(self.signal_pipe_r, _utils.SIGNAL_WAKEUP_FD_READ_SIZE))
        except BlockingIOError:
            return set()

    def _reap_all(self, workers: list[multiprocessing.Process]) -> None:
        for child in workers:
            child.join()
            if child.pid is not None:
                process.kill_group(child.pid)
        process.reap_orphans(set())
