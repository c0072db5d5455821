"""`ManagerService`: a Manager's hook lifecycle as a `cotyledon.Service` (docs/architecture.md,
"The worker lifecycle").

`run()` (the worker's run thread) builds the manager as nova's `Service` does, asks the
recorder for its row, runs `init_host` → record → `pre_start_hook` → RPC consumers →
`post_start_hook` (then the worker is ready), then the periodic loop; `reload()` asks the loop
for a `reset()` on the config in force; `terminate()` (the main thread) stops the loop and
runs `cleanup_host()` once, even while a periodic task is stuck. Every hook publishes its
phase in the worker's beacon, which the parent reads to judge start and heartbeat.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import cotyledon
from oslo_config import cfg

from supervisor import config, logs, mutation
from supervisor.config import ManagerSpec
from supervisor.health import WAITING_FOR_BROKER, Beacon
from supervisor.manager import Manager, building
from supervisor.record_client import ServiceRecord

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

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


def _takes(method: Callable[..., Any], parameter: str) -> bool:
    """Whether `method` has a parameter named `parameter`, as `inspect.signature` says.

    A plain function or method is read from its code object: `inspect.signature` runs
    enough of inspect's Python code in a forked worker to copy ~200 KiB of the parent's
    pages. A wrapped, re-signed or non-Python callable still asks inspect.
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
