"""The parent process: cotyledon's `ServiceManager`, corrected at its seams.

cotyledon forks, reaps and respawns; this module is the one place where its behaviour is
changed for ours, each change a method override with a test that fails without it:

- `_on_signal_received`: one dispatch, `handle_<signal>`, as in gunicorn's arbiter.
- `_reload`: validate the config first, then SIGHUP each worker *by pid*; cotyledon's
  `killpg(0, SIGHUP)` also hits every process a manager started.
- `_shutdown`: SIGTERM each worker, wait up to `graceful_shutdown_timeout` while still
  reading signals, then SIGKILL what is left with its descendants, exit 0. cotyledon's
  SIGALRM never fires while it blocks in `join()`, so its stop can hang forever.
- `_fast_exit` (second SIGINT): SIGKILL workers and their descendants by pid, not
  `killpg(SIGINT)` + exit 1; the first SIGINT is a graceful stop.
- `_start_worker`: fork our `ManagerWorker` (cotyledon hard-codes `ServiceWorker`) with
  forwarded signals blocked, so a signal sent to a just-forked worker is not lost.
- `wait_interval=0`: no fixed 10 ms sleep between the forks of a healthy start.
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Sequence

import cotyledon
import psutil
from cotyledon import _utils
from cotyledon import types as cotyledon_types
from cotyledon._service_manager import WorkerInfo
from oslo_config import cfg

from supervisor import config
from supervisor.worker import FORWARDED_SIGNALS, ManagerService, ManagerWorker

LOG = logging.getLogger(__name__)


class Arbiter(cotyledon.ServiceManager):
    """Runs every configured manager's workers and answers the signals of DESIGN.md."""

    def __init__(
        self, argv: Sequence[str], conf: cfg.ConfigOpts, specs: list[config.ManagerSpec]
    ) -> None:
        super().__init__(wait_interval=0, graceful_shutdown_timeout=conf.graceful_shutdown_timeout)
        _utils.set_process_title(f"{config.PROJECT}: master")
        self._argv = list(argv)
        self._conf = conf
        self._stopping = False
        for spec in specs:
            self.add(ManagerService, workers=spec.workers, args=(spec,))
            LOG.info("manager %s: %s, %d worker(s)", spec.name, spec.manager_class, spec.workers)

    # -- signals: one dispatch table

    def _on_signal_received(self, sig: int) -> None:
        handler = {
            signal.SIGHUP: self.handle_hup,
            signal.SIGTERM: self.handle_term,
            signal.SIGINT: self.handle_int,
            signal.SIGCHLD: self._got_sig_chld.set,
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
        if self._stopping:
            self._fast_exit()
        self._shutdown()

    # -- reload

    def _reload(self) -> None:
        """Validate a fresh copy of the config; only if it is good, apply it and tell workers."""
        if self._stopping:
            return
        try:
            config.load(self._argv)
        except config.ConfigError as exc:
            LOG.error("reload rejected, still running on the old config: %s", exc)
            return
        try:
            self._conf.mutate_config_files()
        except Exception:
            LOG.exception("reload failed while applying the config; workers not signalled")
            return
        self._graceful_shutdown_timeout = self._conf.graceful_shutdown_timeout
        workers = self._child_processes
        LOG.info("reload: config valid, sending SIGHUP to %d worker(s)", len(workers))
        for process in workers:
            _signal_pid(process.pid, signal.SIGHUP)

    # -- stop

    def _shutdown(self) -> None:
        """Graceful stop: SIGTERM each worker, bounded by graceful_shutdown_timeout."""
        if self._stopping:
            return
        self._stopping = True
        timeout = self._conf.graceful_shutdown_timeout
        LOG.info("stopping: SIGTERM to every worker (graceful_shutdown_timeout=%ss)", timeout)
        self._dead.set()
        self._got_sig_chld.set()
        if self._child_supervisor is not None:
            self._child_supervisor.join()
        self._run_hooks("terminate")
        workers = self._child_processes
        for process in workers:
            _signal_pid(process.pid, signal.SIGTERM)
        left = self._wait_for_exit(workers, timeout)
        if left:
            LOG.warning(
                "%d worker(s) still running after %ss: killing them and their descendants",
                len(left),
                timeout,
            )
            _kill_trees(left)
        _reap(workers)
        LOG.info("stopped")
        sys.exit(0)

    def _wait_for_exit(
        self, workers: list[multiprocessing.Process], timeout: float
    ) -> list[multiprocessing.Process]:
        """Wait for workers to exit; a second SIGINT cuts the wait short. Returns the rest."""
        deadline = time.monotonic() + timeout if timeout > 0 else None
        pending = {process.sentinel: process for process in workers}
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

    def _fast_exit(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        """Immediate stop: SIGKILL every worker with its descendants, by pid."""
        LOG.warning("second SIGINT: killing every worker now")
        self._dead.set()
        self._got_sig_chld.set()
        workers = self._child_processes
        _kill_trees(workers)
        _reap(workers)
        os._exit(0)

    # -- fork

    def _start_worker(
        self, service_id: cotyledon_types.ServiceId, worker_id: cotyledon_types.WorkerId
    ) -> None:
        self._slowdown_respawn_if_needed()
        started_event = self.mp_context.Event()
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        try:
            process = _utils.spawn_process(
                ManagerWorker.create_and_wait,
                self.mp_context,
                started_event,
                self._services[service_id],
                service_id,
                worker_id,
                self._death_detection_pipe,
                self._hooks["new_worker"],
                self._graceful_shutdown_timeout,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        self._running_services[service_id][process] = WorkerInfo(worker_id, started_event)


def _signal_pid(pid: int | None, sig: int) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_trees(workers: list[multiprocessing.Process]) -> None:
    """SIGKILL workers and every process below them (collected before the kill)."""
    victims: list[psutil.Process] = []
    for process in workers:
        try:
            root = psutil.Process(process.pid)
            victims.extend([root, *root.children(recursive=True)])
        except (psutil.NoSuchProcess, ValueError):
            continue
    for victim in victims:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass


def _reap(workers: list[multiprocessing.Process]) -> None:
    for process in workers:
        process.join()
