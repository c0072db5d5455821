"""One worker process: the child side of the fork, and the Manager lifecycle it hosts.

`run_worker()` is the child's main once `children.fork_child` has put it in a session of
its own without the parent's descriptors: it installs signal handlers that only wake its
main thread, then hosts a `cotyledon.Service` through that class's public contract —
`run()` in a thread, `reload()` on SIGHUP, `terminate()` on SIGTERM (or when the parent
dies) — and returns the exit status `fork_child` exits with. `ManagerService` is the
Service that drives a Manager's hooks (docs/architecture.md, "The worker lifecycle"); any
other `cotyledon.Service` subclass runs the same way and is ready once its `run()` has
started.

Signal handlers never run hooks: the main thread reads signal numbers from a wake-up pipe
and calls the service, so a SIGHUP during `reset()` is remembered, not dropped, and
`cleanup_host()` runs on the main thread while a stuck periodic task holds the other one.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import random
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import cotyledon
import setproctitle
from oslo_config import cfg

from supervisor import config, logs, mutation, reports, stamp, wakeup
from supervisor.children import exit_now
from supervisor.config import PROJECT, ManagerSpec
from supervisor.health import WAITING_FOR_BROKER, Beacon
from supervisor.manager import Manager, building
from supervisor.process import terminate_descendants
from supervisor.record_client import CREATE_WAIT_SECONDS, ServiceRecord

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

# Blocked by the parent around fork; the child unblocks them once its handlers exist, so
# a signal sent to a just-forked worker is delivered, not lost.
FORWARDED_SIGNALS = frozenset(
    {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGCHLD, signal.SIGUSR2}
)
_RUN_ENDED = 0  # written to the wake-up pipe by the run thread; no signal has number 0
_NO_RECORD = object()


class HookFailed(Exception):
    """A manager hook raised; already logged with its traceback."""


class ManagerService(cotyledon.Service):
    """Hosts one Manager: startup hooks, the periodic loop, reset on SIGHUP, cleanup on stop."""

    def __init__(
        self,
        worker_id: int,
        spec: ManagerSpec,
        follower: mutation.Follower,
        beacon: Beacon,
        record: ServiceRecord,
        wake_parent: Callable[[], None],
    ) -> None:
        super().__init__(worker_id)
        self.record = record
        self.follower = follower
        self.beacon = beacon
        self.manager: Manager | None = None
        self.phase = "starting"
        self.label = f"{spec.name} worker({worker_id})"
        self._wake_parent = wake_parent  # the parent reads our beacon at its next pass
        self.consumers: Any = None  # rpc.Consumers, with [DEFAULT] transport_url set
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reload_requested = threading.Event()
        self._init_returned = threading.Event()
        self._init_done = threading.Event()  # init_host() returned, or run() ended before
        self._loop_exited = threading.Event()
        self._cleanup_lock = threading.Lock()
        self._cleaned_up = False

    @property
    def spec(self) -> ManagerSpec:
        """The manager's spec as the config in force has it (remade at each reload)."""
        return self.follower.spec

    # -- the cotyledon.Service contract (run: its own thread; reload, terminate: main thread)

    def run(self) -> None:
        try:
            self._start()
            self._loop()
        except HookFailed:
            if self._init_returned.is_set() and not self._stopping.is_set():
                self._cleanup()
            raise SystemExit(1) from None
        finally:
            self._loop_exited.set()
            self._init_done.set()

    def reload(self) -> None:
        self._reload_requested.set()
        self._wake.set()

    def terminate(self) -> None:
        """Stop the loop, then `cleanup_host()` once, even if a periodic task is stuck."""
        LOG.info("%s: stopping (in %s)", self.label, self.phase)
        self.beacon.set_phase("stopping")
        self._stopping.set()
        self._wake.set()
        # Whatever the lifecycle waits for from the recorder is not needed any more (and
        # this thread, which reads its answers, is busy here).
        self.record.give_up_waiting()
        # cleanup_host() is owed only once init_host() has returned; a stuck init_host()
        # is ended by the worker's alarm (or the parent's SIGKILL) instead.
        self._init_done.wait()
        if not self._init_returned.is_set():
            return
        timeout = self.spec.graceful_shutdown_timeout
        budget = timeout / 2 if timeout > 0 else None
        if self.consumers is not None:  # no more messages; those taken get their answers
            self.consumers.stop(budget)
        # Still waiting for the broker: nothing to wait for (start() stops what it made).
        waiting = self.phase == WAITING_FOR_BROKER
        if not waiting and not self._loop_exited.wait(budget):
            LOG.warning(
                "%s: %s still running after %.1fs; running cleanup_host() without it",
                self.label,
                self.phase,
                budget,
            )
        self._cleanup()

    # -- lifecycle

    def _start(self) -> None:
        self._set_phase("build")
        spec = self.spec
        try:
            with building(spec.name):
                self.manager = spec.manager_class(host=spec.host, db_driver=spec.db_driver)
        except Exception:
            LOG.exception(
                "%s: building %s failed", self.label, config.dotted_name(spec.manager_class)
            )
            raise HookFailed from None
        self._track_periodic_tasks()
        self._set_phase("service record")
        existing = self.record.existing()
        if self._stopping.is_set():  # stopped before any hook ran: none is owed
            return
        self._call("init_host", service_ref=existing)
        self._init_returned.set()
        self._init_done.set()
        self._set_phase("service record")
        service_ref = self.record.create()
        if self._stopping.is_set():
            return
        self._call("pre_start_hook", service_ref=service_ref)
        if self._stopping.is_set():
            return
        if config.rpc_enabled(CONF) and not self._start_consumers():
            return
        self._call("post_start_hook")
        self.beacon.mark_ready("ready")
        self._wake_parent()
        LOG.info("%s: ready", self.label)

    def _start_consumers(self) -> bool:
        """RPC consumers of the manager's topic, before `post_start_hook()`; while the broker
        cannot be reached the worker waits here (a phase, not a failed start). False when
        a stop came first."""
        from supervisor import rpc  # imported by the parent already: RPC is on

        assert self.manager is not None
        endpoints = [
            self.manager,
            *getattr(self.manager, "additional_endpoints", []),
            rpc.BaseRPCAPI(self.manager.service_name, self.manager.backdoor_port),
        ]
        try:
            self.consumers = rpc.Consumers(self.spec.topic, self.spec.host, endpoints, self.beacon)
        except Exception:
            LOG.exception("%s: creating the RPC consumers failed", self.label)
            raise HookFailed from None
        self._set_phase(WAITING_FOR_BROKER)
        self._wake_parent()  # its STATUS says what we wait for
        try:
            return self.consumers.start() and not self._stopping.is_set()
        except Exception:
            LOG.exception("%s: starting the RPC consumers failed", self.label)
            raise HookFailed from None

    def _track_periodic_tasks(self) -> None:
        """Publish which periodic task runs, so a hung one is named (per instance)."""
        assert self.manager is not None
        self.manager._periodic_tasks = [
            (name, self._tracked(name, task)) for name, task in self.manager._periodic_tasks
        ]

    def _tracked(self, name: str, task: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(task)
        def run_task(*args: Any, **kwargs: Any) -> Any:
            self._set_phase(f"periodic task {name}")
            return task(*args, **kwargs)

        return run_task

    def _set_phase(self, phase: str, idle_until: float = 0.0) -> None:
        self.phase = phase
        self.beacon.set_phase(phase, idle_until)

    def _loop(self) -> None:
        self._sleep("periodic_fuzzy_delay", random.uniform(0, self.spec.periodic_fuzzy_delay))
        while True:
            self._wake.clear()
            if self._stopping.is_set():
                return
            # Each reset and each periodic run is one request: its lines share a req- id.
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                logs.fresh_context()
                self._apply_reload()
                continue
            idle = self._call("periodic_tasks", logs.fresh_context())
            interval_max = self.spec.periodic_interval_max
            idle = interval_max if idle is None else max(0.0, min(float(idle), interval_max))
            self._set_phase("idle", time.monotonic() + idle)
            self._wake.wait(idle)

    def _sleep(self, phase: str, seconds: float) -> None:
        """A sleep that promises its end (so it is not taken for a hang) and a stop ends."""
        deadline = time.monotonic() + seconds
        self._set_phase(phase, deadline)
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(remaining)
            self._wake.clear()

    def _apply_reload(self) -> None:
        """Mutate the config as the parent validated it (oslo.config), then reset()."""
        self._set_phase("reload")
        self.follower.follow()
        self._call("reset")

    def _cleanup(self) -> None:
        with self._cleanup_lock:
            if self._cleaned_up:
                return
            self._cleaned_up = True
            try:
                self._call("cleanup_host")
            except HookFailed:
                raise SystemExit(1) from None

    def _call(self, hook: str, *args: Any, service_ref: Any = _NO_RECORD) -> Any:
        """Call one hook; `service_ref` only if it takes one (nova's current signatures)."""
        if hook == "cleanup_host":
            self.beacon.set_phase(hook)
        else:
            self._set_phase(hook)
        LOG.debug("%s: %s()", self.label, hook)
        method = getattr(self.manager, hook)
        kwargs = {}
        if service_ref is not _NO_RECORD and _takes(method, "service_ref"):
            kwargs["service_ref"] = service_ref
        try:
            return method(*args, **kwargs)
        except Exception:
            LOG.exception("%s: %s() raised", self.label, hook)
            raise HookFailed from None


class WorkerProcess:
    """The worker's main thread: process set-up, then signals → the service's methods."""

    def __init__(
        self,
        spec: ManagerSpec,
        worker_id: int,
        beacon: Beacon,
        config_stamp: stamp.ConfigStamp,
        ready_fd: int,
        recorder_path: str,
    ) -> None:
        self.worker_id = worker_id
        self.beacon = beacon
        self.label = f"{spec.name} worker({worker_id})"
        self.follower = mutation.Follower(CONF, config_stamp, spec, self.label, worker_id)
        self._ready_fd = ready_fd
        self._recorder_path = recorder_path
        self._ready_deadline: float | None = None  # a plain Service's wait for its record
        self._wakeup = wakeup.Wakeup()
        self._run_status: int | None = None
        self._exit_status: int | None = None  # set by a handler: the main loop ends
        self._parent_pid = 0
        self.service: cotyledon.Service | None = None
        self.record: ServiceRecord | None = None

    @property
    def spec(self) -> ManagerSpec:
        """The manager's spec as the config in force has it (remade at each reload)."""
        return self.follower.spec

    def set_up(self, parent_pid: int) -> None:
        """Right after fork (in a session of its own, without the parent's fds): our signal
        rules, title and logging."""
        # Caught, not SIG_IGN: what a manager starts gets default dispositions (SIGINT too).
        self._wakeup.route((signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR2))
        signal.signal(signal.SIGALRM, self._alarm)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self._parent_pid = parent_pid
        setproctitle.setproctitle(f"{PROJECT}: {self.spec.name} worker({self.worker_id})")
        try:
            logs.setup_worker(CONF, PROJECT, self.spec.section, self.spec.name, self.worker_id)
        except OSError as exc:  # checked by the parent; gone since
            LOG.error("%s: [%s] log_file: %s", self.label, self.spec.section, exc)
            exit_now(1)
        reports.set_section(self._report_section)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())

    def run(self) -> int:
        """Host the service until a stop; returns the exit status."""
        # The host's recorder writes the record; this thread reads its answers and reports.
        self.record = ServiceRecord(
            self._recorder_path,
            self.spec.name,
            self.worker_id,
            os.getpid(),
            self.beacon,
            lambda: self.spec.limits,
        )
        self.record.connect()
        self.service = self._build()
        if self.service is None:
            return 1
        if not isinstance(self.service, ManagerService):
            self.record.request_start()
            self._ready_deadline = time.monotonic() + CREATE_WAIT_SECONDS
        threading.Thread(target=self._run_service, name="run", daemon=True).start()
        while self._exit_status is None:
            self._mark_ready_once_recorded()
            wakeup.dispatch(self, self._wait_for_wakeups())
        return self._exit_status

    # -- what wakes the main thread (wakeup.dispatch); once one ends it, the rest wait

    def handle_term(self) -> None:
        if self._exit_status is None:
            self._exit_status = self._stop()

    def handle_hup(self) -> None:
        assert self.service is not None
        if self._exit_status is not None:
            return
        LOG.debug("%s: SIGHUP", self.label)
        if not isinstance(self.service, ManagerService):  # it mutates in its loop
            self.follower.follow()
        self._exit_status = _call_service(self.label, self.service.reload)

    def handle_usr2(self) -> None:
        reports.write_report(CONF, f"{PROJECT}-{self.spec.name}-{self.worker_id}")

    def handle_posted(self, number: int) -> None:
        """The run thread ended: a failure ends the worker; a clean end waits for SIGTERM."""
        if number == _RUN_ENDED and self._run_status not in (None, 0) and self._exit_status is None:
            self._exit_status = self._run_status

    def _report_section(self) -> str:
        """This worker in its Guru Meditation Report: manager, worker id, pid, phase."""
        now = time.monotonic()
        beacon = self.beacon.read()
        phase = f"phase: {beacon.phase} for {now - beacon.phase_since:.1f}s"
        if beacon.idle_until > now:
            phase += f", ends in {beacon.idle_until - now:.1f}s"
        elif beacon.idle_until:
            phase += f", {now - beacon.idle_until:.1f}s past its promised end"
        lines = [
            f"manager: {self.spec.name} ({config.dotted_name(self.spec.manager_class)})",
            f"worker id: {self.worker_id}",
            f"pid: {os.getpid()} (supervisor pid {self._parent_pid})",
            phase,
            f"ready: {'yes' if beacon.ready else 'no'}",
        ]
        if config.rpc_enabled(CONF):
            served, failed = beacon.rpc_served, beacon.rpc_failed
            lines.append(
                f"rpc: {beacon.rpc}, {served} served, {failed} failed, "
                f"{beacon.rpc_rejected} rejected"
            )
        return "\n".join(lines)

    def _build(self) -> cotyledon.Service | None:
        cls = self.spec.manager_class
        assert self.record is not None
        if issubclass(cls, Manager):
            return ManagerService(
                self.worker_id,
                self.spec,
                self.follower,
                self.beacon,
                self.record,
                self._notify_parent,
            )
        try:
            return cls(self.worker_id)
        except Exception:
            LOG.exception("%s: building %s failed", self.label, config.dotted_name(cls))
            return None

    def _run_service(self) -> None:
        assert self.service is not None
        self._run_status = _call_service(self.label, self.service.run) or 0
        with contextlib.suppress(OSError):
            self._wakeup.post(_RUN_ENDED)

    def _mark_ready_once_recorded(self) -> None:
        """A plain Service is ready once the recorder answered its start (or after waiting
        CREATE_WAIT_SECONDS for it)."""
        assert self.record is not None
        deadline = self._ready_deadline
        if deadline is None or not (self.record.answered or time.monotonic() >= deadline):
            return
        self._ready_deadline = None
        self.beacon.mark_ready("running")
        self._notify_parent()
        LOG.info("%s: ready", self.label)

    def _notify_parent(self) -> None:
        """Wake the parent's loop: a worker became ready, or began to wait for the broker."""
        with contextlib.suppress(OSError):
            os.write(self._ready_fd, b"r")

    def _wait_for_wakeups(self) -> list[int]:
        """Signal numbers (and the run thread's end); meanwhile the recorder's answers are
        read and, every report_interval, a report is sent."""
        assert self.record is not None
        now = time.monotonic()
        timeouts = [self.record.seconds_to_report(now, self.spec.report_interval)]
        if self._ready_deadline is not None:
            timeouts.append(0.0 if self.record.answered else self._ready_deadline - now)
        timeout = min((t for t in timeouts if t is not None), default=None)
        fds = [self._wakeup.fileno()]
        if (record_fd := self.record.fileno()) is not None:
            fds.append(record_fd)
        readable, _, _ = select.select(fds, [], [], None if timeout is None else max(0, timeout))
        if record_fd is not None and record_fd in readable:
            self.record.on_readable()
        self.record.report_if_due(time.monotonic(), self.spec.report_interval)
        return self._wakeup.read() if self._wakeup.fileno() in readable else []

    def _stop(self) -> int:
        """SIGTERM (or the parent died): terminate the service; its exit status."""
        LOG.info("%s: SIGTERM received, stopping", self.label)
        assert self.service is not None
        timeout = self._graceful_shutdown_timeout()
        if timeout > 0:
            # A backstop one second after the parent's own deadline: the parent, which can
            # still see our children, does the killing; this covers a parent that is gone.
            signal.alarm(int(timeout) + 1)
        status = _call_service(self.label, self.service.terminate) or 0
        # The supervisor asked for this stop: the record says stopped. A worker whose parent
        # died leaves its record to age out, so that host shows down.
        if self.record is not None and os.getppid() == self._parent_pid:
            self.record.stop()
        return status

    def _graceful_shutdown_timeout(self) -> float:
        own = getattr(self.service, "graceful_shutdown_timeout", None)
        return float(self.spec.graceful_shutdown_timeout if own is None else own)

    def _alarm(self, signum: int, frame: object) -> None:
        """The stop overran its backstop: kill what we started and exit at once."""
        phase = getattr(self.service, "phase", "terminate()")
        LOG.warning("%s: stop took too long, still in %s; killing its children", self.label, phase)
        terminate_descendants(self.label, grace=0)
        exit_now(1)


def _takes(method: Callable[..., Any], parameter: str) -> bool:
    """Whether `method` has a parameter named `parameter`, as `inspect.signature` says.

    A plain function or method is read from its code object: `inspect.signature` runs
    enough of inspect's Python code in a forked worker to copy ~200 KiB of the parent's
    pages (docs/benchmarks-history.md, issue 14). A wrapped, re-signed or non-Python
    callable still asks inspect.
    """
    function = getattr(method, "__func__", method)
    code = getattr(function, "__code__", None)
    if code is not None and not any(
        hasattr(function, name) for name in ("__wrapped__", "__signature__")
    ):
        return parameter in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    try:
        return parameter in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _call_service(label: str, method: Callable[[], None]) -> int | None:
    """Call one method of the service; its SystemExit code, 1 if it raised, else None."""
    try:
        method()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception:
        LOG.exception("%s: %s() raised", label, method.__name__)
        return 1
    return None


def run_worker(
    spec: ManagerSpec,
    worker_id: int,
    *,
    beacon: Beacon,
    config_stamp: stamp.ConfigStamp,
    ready_fd: int,
    recorder_path: str,
    parent_pid: int,
) -> int:
    """The child's main after `children.fork_child`; its exit status."""
    worker = WorkerProcess(spec, worker_id, beacon, config_stamp, ready_fd, recorder_path)
    worker.set_up(parent_pid)
    status = worker.run()
    # However it ended (a stop, a hook that raised): what it started gets its grace.
    terminate_descendants(worker.label)
    return status
