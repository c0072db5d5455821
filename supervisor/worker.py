"""One worker process: builds a Manager and drives its hook lifecycle (DESIGN.md, steps 1-5).

cotyledon's `ServiceWorker` gives us the process plumbing (signal pipe, parent-death pipe,
a thread for `run()` and one per signal); `ManagerService` is the cotyledon `Service` it
hosts. Signal handlers never run hooks themselves: they set a flag and wake the loop thread,
so a SIGHUP during `reset()` is remembered, not dropped, and only `cleanup_host()` runs off
the loop thread, because a stop must not wait for a periodic task that is stuck.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import cotyledon
from cotyledon import _service_worker, _utils
from oslo_config import cfg
from oslo_context import context as oslo_context

from supervisor import snapshot
from supervisor.config import PROJECT, ManagerSpec
from supervisor.health import Beacon
from supervisor.manager import Manager
from supervisor.process import die_with_parent, terminate_descendants
from supervisor.snapshot import SnapshotStore

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

# Signals the parent blocks around fork: the child unblocks them once its own handlers
# are installed, so a signal sent to a just-forked worker is delivered, not lost.
FORWARDED_SIGNALS = frozenset({signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGALRM})


class HookFailed(Exception):
    """A manager hook raised; already logged with its traceback."""


class ManagerService(cotyledon.Service):
    """Hosts one Manager: startup hooks, the periodic loop, reset on SIGHUP, cleanup on stop."""

    def __init__(self, worker_id: int, spec: ManagerSpec, snapshots: SnapshotStore) -> None:
        super().__init__(worker_id)
        self.name = spec.name
        self.spec = spec
        self.snapshots = snapshots
        self.snapshot_generation = 0  # the one in force here; set at fork
        self.manager: Manager | None = None
        self.phase = "starting"
        self.beacon = Beacon()  # replaced by the one shared with the parent
        self.ready_fd: int | None = None  # the parent's wake-up pipe
        self.label = f"{spec.name} worker({worker_id})"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reload_requested = threading.Event()
        self._init_returned = threading.Event()
        self._loop_exited = threading.Event()
        self._cleanup_lock = threading.Lock()
        self._cleaned_up = False

    @property
    def graceful_shutdown_timeout(self) -> int:  # type: ignore[override]
        """Read at SIGTERM time, so a SIGHUP that changed it is honoured."""
        return int(CONF.graceful_shutdown_timeout)

    # -- cotyledon entry points (run: its own thread; reload/terminate: a thread per signal)

    def run(self) -> None:
        try:
            self._start()
            self._loop()
        except HookFailed:
            if self._init_returned.is_set():
                self._cleanup()
            raise SystemExit(1) from None
        finally:
            self._loop_exited.set()

    def reload(self) -> None:
        self._reload_requested.set()
        self._wake.set()

    def terminate(self) -> None:
        LOG.info("%s: stopping (in %s)", self.label, self.phase)
        self.beacon.set_phase("stopping")
        self._stopping.set()
        self._wake.set()
        # cleanup_host() is owed only once init_host() has returned; a stuck init_host()
        # is ended by the graceful-shutdown alarm instead.
        self._init_returned.wait()
        timeout = self.graceful_shutdown_timeout
        budget = timeout / 2 if timeout > 0 else None
        if not self._loop_exited.wait(budget):
            LOG.warning(
                "%s: %s still running after %.1fs; running cleanup_host() without it",
                self.label,
                self.phase,
                budget,
            )
        self._cleanup()
        terminate_descendants(self.label)

    # -- lifecycle

    def _start(self) -> None:
        self._set_phase("build")
        try:
            self.manager = self.spec.manager_class(host=CONF.host, service_name=self.spec.name)
        except Exception:
            LOG.exception("%s: building %s failed", self.label, self.spec.manager_class.__name__)
            raise HookFailed from None
        self._track_periodic_tasks()
        self._call("init_host")
        self._init_returned.set()
        for hook in ("pre_start_hook", "post_start_hook"):
            if self._stopping.is_set():
                return
            self._call(hook)
        self.beacon.mark_ready("ready")
        if self.ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, b"r")
        LOG.info("%s: ready", self.label)

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
        section = CONF[self.spec.section]
        self._sleep(random.uniform(0, section.periodic_fuzzy_delay))
        ctx = oslo_context.get_admin_context()
        while True:
            self._wake.clear()
            if self._stopping.is_set():
                return
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._apply_reload()
                continue
            idle = self._call("periodic_tasks", ctx)
            interval_max = section.periodic_interval_max
            idle = interval_max if idle is None else max(0.0, min(float(idle), interval_max))
            self._set_phase("idle", time.monotonic() + idle)
            self._wake.wait(idle)

    def _sleep(self, seconds: float) -> None:
        """Sleep that a stop ends at once; a reload during it is applied afterwards."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(remaining)
            self._wake.clear()

    def _apply_reload(self) -> None:
        """Put the parent's validated snapshot in force (mutable options), then reset()."""
        self._set_phase("reload")
        if self.snapshots.generation != self.snapshot_generation:
            try:
                generation, snap = self.snapshots.load()
            except (OSError, ValueError, KeyError) as exc:
                LOG.error("%s: cannot read the reloaded config, keeping mine: %s", self.label, exc)
                return
            sections = ["DEFAULT", self.spec.section]
            for change in snapshot.apply(CONF, snap, sections, mutable_only=True):
                LOG.info("%s: %s", self.label, change)
            self.snapshot_generation = generation
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

    def _call(self, hook: str, *args: Any) -> Any:
        if hook == "cleanup_host":
            self.beacon.set_phase(hook)
        else:
            self._set_phase(hook)
        LOG.debug("%s: %s()", self.label, hook)
        try:
            return getattr(self.manager, hook)(*args)
        except Exception:
            LOG.exception("%s: %s() raised", self.label, hook)
            raise HookFailed from None


class ManagerWorker(_service_worker.ServiceWorker):
    """cotyledon's worker process with our rules: its own process group, dies with the
    parent, SIGINT ignored, a beacon shared with the parent, a clear process title."""

    @classmethod
    def create_and_wait(  # type: ignore[override]
        cls,
        *args: Any,
        beacon: Beacon,
        parent_pid: int,
        ready_fd: int,
        snapshot_generation: int,
    ) -> None:
        """The worker process's entry point (cotyledon's, without its unused start event)."""
        # Lead a process group, so the parent can find what we leave behind if we die.
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        die_with_parent(parent_pid)
        worker = cls(*args, beacon=beacon)
        worker.service.ready_fd = ready_fd
        worker.service.snapshot_generation = snapshot_generation
        worker.wait_forever()

    def __init__(self, *args: Any, beacon: Beacon) -> None:
        super().__init__(*args)
        # A Ctrl-C reaches the whole foreground process group; the parent coordinates it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.service.beacon = beacon
        self.title = self.service.label
        _utils.set_process_title(f"{PROJECT}: {self.service.name} worker({self.service.worker_id})")
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)

    def _get_graceful_shutdown_timeout(self) -> int:
        """The worker's own alarm is a backstop one second after the parent's deadline:
        the parent, which can still see this worker's children, does the killing."""
        timeout = super()._get_graceful_shutdown_timeout()
        return timeout + 1 if timeout > 0 else 0

    def _alarm(self) -> None:
        """Graceful timeout passed: cotyledon exits at once; first kill what we started."""
        LOG.warning(
            "%s: stop took over %ss, still in %s; killing its children and exiting",
            self.title,
            self._get_graceful_shutdown_timeout(),
            self.service.phase,
        )
        terminate_descendants(self.title, grace=0)
        os._exit(1)
