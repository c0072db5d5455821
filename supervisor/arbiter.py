"""The parent: one thread, one loop (docs/architecture.md, "The parent's loop").

Shaped like gunicorn's arbiter. Signal handlers only write the signal's number to a pipe
(`signal.set_wakeup_fd`). The loop selects on that pipe, the pipe workers write to when
they are ready, the control socket and the HTTP endpoint (when `http_listen` is set), with
the next deadline (a backoff, a kill deadline, start_secs, the health tick, the watchdog, a
client's) as its timeout. Each pass: read signals → `handle_<name>` → reap → health → expire
slow clients → start what is due → state changes → systemd.
Workers are forked here (`children.fork_child`); no other thread exists, so nothing is
locked. What to do is decided in `decisions`; this module performs it.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import selectors
import signal
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psutil
import setproctitle
from oslo_config import cfg

from supervisor import (
    children,
    config,
    control,
    decisions,
    health,
    mutation,
    opts,
    process,
    recorder,
    reports,
    stamp,
    state,
    systemd,
    views,
    wakeup,
    worker,
)
from supervisor.policy import RestartTracker
from supervisor.table import ManagerRecord, StopReason, Table, WorkerRecord, describe_exit

if TYPE_CHECKING:
    from supervisor import http

LOG = logging.getLogger(__name__)


class Phase(enum.Enum):
    """Where the supervisor is in its life; each pass does what its phase asks."""

    RUNNING = "running"
    STOPPING_WORKERS = "stopping workers"
    STOPPING_RECORDER = "stopping the recorder"
    STOPPED = "stopped"


HANDLED_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR2)
# How often the parent looks at beacons and RSS, when some manager sets a limit.
HEALTH_CHECK_INTERVAL = 1.0


class Arbiter:
    """Runs every configured manager's workers and answers the signals of the architecture."""

    def __init__(
        self, argv: Sequence[str], conf: cfg.ConfigOpts, specs: list[config.ManagerSpec]
    ) -> None:
        self._argv = list(argv)
        self._conf = conf
        self._specs = specs
        self._table = Table()
        self._selector = selectors.DefaultSelector()
        # setproctitle first: it finds the room for titles in the argv and environ area
        # only while that is as the kernel laid it out, and systemd puts NOTIFY_SOCKET at
        # its start.
        setproctitle.setproctitle(f"{opts.PROJECT}: master")
        # Takes NOTIFY_SOCKET out of the environment, so no worker inherits it.
        self._notifier = systemd.Notifier()
        self._config_stamp = stamp.ConfigStamp()
        # The files `conf` was read from a moment ago: a reload that finds them unchanged
        # costs the workers nothing.
        started_on = self._files_digest(conf)
        if started_on is not None:
            self._config_stamp.publish(started_on)
        self._control: control.ControlServer | None = None
        self._http: http.HttpServer | None = None
        self._recorder: recorder.RecorderProcess | None = None
        self._lock_fd = -1
        self._wakeup = wakeup.Wakeup()
        self._ready_r, self._ready_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pending_signals: list[int] = []
        self._child_exited = False
        self._phase = Phase.RUNNING
        self._stopping = False  # a stop is asked for: the next pass begins it
        self._stop_deadline: float | None = None  # SIGKILL what the phase waits for
        self._stop_now = False  # a second SIGINT: kill what is left
        self._exit_status = 0
        self._refusal: str | None = None  # why the recorder refused the database, at start
        self._announced_ready = False
        self._next_health_check = 0.0
        self._next_watchdog = 0.0
        self._started_at = time.monotonic()
        self._pid = os.getpid()
        self._session = os.getsid(0)

    # -- the loop

    def run(self) -> int:
        """Set up (a ConfigError or ControlError here means nothing was forked), then loop.

        A ConfigError after the loop is the recorder's refusal of the database: the workers
        were stopped while they waited for their record, before any hook.
        """
        self._set_up()
        try:
            while self._phase is not Phase.STOPPED:
                try:
                    self._run_pass()
                except Exception:
                    if self._phase is not Phase.RUNNING:
                        raise
                    LOG.exception("internal error in the supervision loop: stopping the workers")
                    self._exit_status = 1
                    self._stopping = True
        except Exception:
            LOG.exception("internal error while stopping: killing what is left")
            self._exit_status = 1
        finally:
            self._tear_down()
        if self._refusal is not None:
            raise config.ConfigError(self._refusal)
        return self._exit_status

    def _run_pass(self) -> None:
        """One turn of the loop; a stop is phases of the same pass (docs/architecture.md,
        "The parent's loop")."""
        for key, mask in self._selector.select(self._seconds_to_next_deadline()):
            key.data(mask)
        self._handle_signals()
        now = time.monotonic()
        self._reap(now)
        if self._phase is Phase.RUNNING and not self._stopping:
            self._supervise(now)
        if self._phase is Phase.RUNNING and self._stopping:
            self._begin_stop(now)
        if self._phase is not Phase.RUNNING:
            self._advance_stop(now)

    def _supervise(self, now: float) -> None:
        self._perform(decisions.advance_restarts(self._table), now)
        self._enforce_kill_deadlines(now)
        self._check_health(now)
        self._expire_clients(now)
        decisions.settle(self._table, now)
        self._start_due_workers(now)
        self._log_state_changes(now)
        self._notify_systemd(now)
        self._exit_if_every_manager_is_fatal()

    def _set_up(self) -> None:
        state_path = self._conf.state_path
        try:
            state.prepare_directory(state_path)
            self._lock_fd = state.acquire_lock(state_path)
        except state.StateError as exc:
            raise config.ConfigError(f"[DEFAULT] state_path: {exc}") from None
        if not process.become_subreaper():
            LOG.warning("could not become child subreaper; orphans go to init")
        if self._conf.supervisor.http_listen:
            from supervisor import http  # only with the endpoint on: nothing of it otherwise

            self._http = http.HttpServer(
                self._conf.supervisor.http_listen, self._selector, self.status, self._parent_fds
            )
        self._control = control.ControlServer(
            self._conf.supervisor.control_socket, self._on_control, self._selector
        )
        self._recorder = recorder.RecorderProcess(state_path, self._conf)
        if config.rpc_enabled(self._conf):
            self._load_rpc_plugins()
        else:
            LOG.info("RPC is off: [DEFAULT] transport_url is not set")
        for spec in self._specs:
            self._add_manager(spec)
        self._wakeup.route(HANDLED_SIGNALS)
        self._selector.register(self._wakeup, selectors.EVENT_READ, self._read_signals)
        self._selector.register(self._ready_r, selectors.EVENT_READ, self._drain_ready)
        reports.set_section(self._report_section)
        # cmd held SIGHUP and SIGUSR2 blocked until now: sent during start-up, they are
        # handled here.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP, signal.SIGUSR2})

    def _load_rpc_plugins(self) -> None:
        """Shared by every worker instead of loaded by each after its fork. A plugin that
        does not load is each worker's error to report (as creating its RPC consumers)."""
        from supervisor import rpc  # imported already: the config's check of transport_url

        try:
            rpc.load_plugins(self._conf)
        except Exception as exc:  # the URL parsed at load: stevedore's and import errors only
            LOG.warning("RPC plugins not loaded before forking: %s: %s", type(exc).__name__, exc)

    def _tear_down(self) -> None:
        if self._table.workers:  # only after an error while stopping: never leave a worker
            process.kill_trees(list(self._table.workers))
        if self._recorder is not None:
            if self._recorder.pid is not None:
                process.kill_trees([self._recorder.pid])
            self._recorder.close()
        if self._control is not None:
            self._control.close()
        if self._http is not None:
            self._http.close()
        LOG.info("stopped")

    def _seconds_to_next_deadline(self) -> float | None:
        now = time.monotonic()
        if self._phase is not Phase.RUNNING:  # SIGCHLD ends each wait
            late = self._stop_deadline is None or self._stop_now
            return None if late else max(0.0, self._stop_deadline - now)
        deadlines = [
            tracked.tracker.not_before
            for tracked in self._table.managers.values()
            if not tracked.tracker.fatal and self._table.missing_ids(tracked)
        ]
        for record in self._table.workers.values():
            if record.kill_at is not None:
                deadlines.append(record.kill_at)
            if not record.settled and record.ready:
                policy = self._table.managers[record.manager].spec.policy
                deadlines.append(record.forked_at + policy.start_secs)
        if self._table.workers and self._health_limits_set():
            deadlines.append(self._next_health_check)
        if self._notifier.watchdog_interval:
            deadlines.append(self._next_watchdog)
        for server in (self._control, self._http):  # only while a client is connected
            if server is not None and (deadline := server.next_deadline()):
                deadlines.append(deadline)
        if self._recorder is not None and self._recorder.pid is None:
            deadlines.append(self._recorder.not_before)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    # -- signals: read from the wake-up pipe, handled by name

    def _read_signals(self, mask: int) -> None:
        self._pending_signals.extend(self._wakeup.read())

    def _drain_ready(self, mask: int) -> None:
        """A worker said it is ready: the pass that follows sees it in its beacon."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._ready_r, 4096)

    def _handle_signals(self) -> None:
        pending, self._pending_signals = self._pending_signals, []
        wakeup.dispatch(self, pending)

    def handle_hup(self) -> None:
        """Reload: validate first; apply the diff only if everything can be applied."""
        if not self._stopping:
            self._reload()

    def _reload(self) -> str | None:
        """A reload, and our signal handlers again: a manager module the reload imported
        may have installed its own (oslo.reports' setup_autorun() does, for SIGUSR2).
        Why it was not applied, or None."""
        try:
            return self._validate_and_apply()
        finally:
            self._wakeup.route(HANDLED_SIGNALS)

    def handle_term(self) -> None:
        self._stopping = True

    def handle_int(self) -> None:
        """The first SIGINT stops gracefully; a second one, during the stop, kills at once."""
        if self._phase is not Phase.RUNNING and not self._stop_now:
            LOG.warning("second SIGINT: stopping now")
            self._stop_now = True
            process.kill_trees(self._alive())
        self._stopping = True

    def handle_chld(self) -> None:
        self._child_exited = True

    def handle_usr2(self) -> None:
        """oslo.reports' Guru Meditation Report, with the supervisor's table in it."""
        reports.write_report(self._conf, opts.PROJECT)

    def _report_section(self) -> str:
        return views.format_status(self.status())

    # -- reload

    def _validate_and_apply(self) -> str | None:
        """Validate into a fresh config, check it fits the running one, then mutate.

        Everything that can fail comes before anything changes; a failure while applying
        is logged and every worker keeps running (docs/architecture.md, "Reload").
        """
        self._notifier.reloading()
        rejected = None
        try:
            before = self._files_digest(self._conf)
            fresh, specs = config.load(self._argv)
            digest = self._files_digest(fresh)
            if digest is None or digest != before:
                raise config.ConfigError(
                    "the config files changed while they were validated: send SIGHUP again"
                )
            config.adopt_manager_sections(self._conf, specs)
        except config.ConfigError as exc:
            rejected = str(exc)
        if rejected is not None:  # logged outside the handler: no traceback for a bad file
            self._table.reloads.count(ok=False)
            self._reload_rejected(rejected)
            return rejected
        try:
            self._apply_reload(fresh, specs, digest)
        except Exception as exc:
            self._table.reloads.count(ok=False)
            LOG.exception("reload could not be applied; every worker keeps running")
            self._say_ready_or_status(f"reload failed at {time.strftime('%H:%M:%S')}")
            return f"could not be applied ({type(exc).__name__}); every worker keeps running"
        self._table.reloads.count(ok=True)
        self._say_ready_or_status(f"reload applied at {time.strftime('%H:%M:%S')}")
        return None

    @staticmethod
    def _files_digest(conf: cfg.ConfigOpts) -> bytes | None:
        """The digest of the files `conf` reads as they are now; None if one is unreadable
        (validation says which)."""
        try:
            return stamp.files_digest(config.config_files(conf))
        except OSError:
            return None

    def _reload_rejected(self, reason: str) -> None:
        LOG.error("reload rejected, still running on the old config: %s", reason)
        self._say_ready_or_status(f"reload rejected at {time.strftime('%H:%M:%S')}: {reason}")

    def _say_ready_or_status(self, status: str) -> None:
        """After a reload: READY=1 again, unless the first READY=1 is still to come."""
        if self._announced_ready:
            self._notifier.ready(status)
        else:
            self._notifier.status(status)

    def _apply_reload(
        self, fresh: cfg.ConfigOpts, specs: list[config.ManagerSpec], digest: bytes
    ) -> None:
        """Mutate the running config, then apply the diff: add, remove, resize, replace
        managers; publish the files' digest and SIGHUP the rest to mutate theirs."""
        changed, immutable = mutation.mutate(self._conf)
        if self._files_digest(fresh) != digest:  # rewritten within the mutation's millisecond
            LOG.error(
                "reload: the config files were rewritten while they were read; the workers "
                "keep the config in force, and the reload starts over"
            )
            self._pending_signals.append(signal.SIGHUP)
            return
        added = [
            spec
            for spec in specs
            if spec.name not in self._table.managers or self._table.managers[spec.name].removing
        ]
        config.adopt_immutable_values(self._conf, fresh, added)
        config.refresh_manager_defaults(self._conf, specs)
        self._warn_needs_restart(fresh, immutable)
        self._config_stamp.publish(digest)
        # From the config in force, as its workers will have it: an immutable value that
        # changed in the files (`host`) stays the one the supervisor started with.
        specs = [config.manager_spec(self._conf, s.name, s.manager_class) for s in specs]
        plan = decisions.reconcile(self._table, specs)
        for note in plan.notes:
            LOG.info("reload: %s", note)
        for spec in plan.added:
            self._add_manager(spec)
        for record in plan.reset:
            process.signal_pid(record.pid, signal.SIGHUP)
        self._perform(plan.stop, time.monotonic())
        for tracked in list(self._table.managers.values()):
            decisions.forget_if_gone(self._table, tracked)
        for change in mutation.describe(changed, config.known_opts(specs), fresh):
            LOG.info("reload: %s", change)
        LOG.info("reload applied: SIGHUP to %d worker(s) to reset in place", len(plan.reset))

    def _warn_needs_restart(self, fresh: cfg.ConfigOpts, immutable: list[mutation.Change]) -> None:
        """Immutable options whose value changed: applied nowhere, said once, with the file."""
        pending = []
        for group, name in immutable:
            known, running = mutation.value(self._conf, (group, name))
            new_known, new = mutation.value(fresh, (group, name))
            if not (known and new_known and running == new):  # else: an added manager took it
                pending.append((group or "DEFAULT", name))
        if not pending:
            return
        where = config.file_locator(fresh)
        for section, name in pending:
            LOG.warning(
                "reload: %s: [%s] %s changed, but it needs a restart of the supervisor: "
                "not applied",
                where(section, name),
                section,
                name,
            )

    def _add_manager(self, spec: config.ManagerSpec) -> None:
        self._table.managers[spec.name] = ManagerRecord(spec, RestartTracker(spec.policy))
        LOG.info(
            "manager %s: %s, %d worker(s)%s",
            spec.name,
            config.dotted_name(spec.manager_class),
            spec.workers,
            f", RPC topic {spec.topic!r}" if config.rpc_enabled(self._conf) else "",
        )

    # -- reap: workers, then orphans

    def _reap(self, now: float) -> None:
        if not self._child_exited:
            return
        self._child_exited = False
        for record in list(self._table.workers.values()):
            try:
                info = os.waitid(os.P_PID, record.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                LOG.error("%s is not our child any more; forgetting it", record.label)
                self._on_worker_exit(record, 0xFF00, now)
                continue
            if info is None or info.si_pid == 0:
                continue
            # Kill what the worker left behind while its pid, so its session and group
            # ids, still cannot be reused: only the waitpid() below releases them.
            process.kill_group(record.pid)
            process.kill_session_orphans(record.pid)
            _, wait_status = os.waitpid(record.pid, 0)
            self._on_worker_exit(record, wait_status, now)
        if self._http is not None:
            self._http.reap()
        ours = set(self._table.workers)
        if self._recorder is not None and self._recorder.pid is not None:
            self._reap_recorder(self._recorder, now)
            ours.add(self._recorder.pid or 0)
        process.reap_orphans(self._session, ours)

    def _reap_recorder(self, handle: recorder.RecorderProcess, now: float) -> None:
        assert handle.pid is not None
        try:
            pid, wait_status = os.waitpid(handle.pid, os.WNOHANG)
        except ChildProcessError:
            pid, wait_status = handle.pid, 0xFF00
        if pid:
            refusal = handle.on_exit(describe_exit(wait_status), now, self._stopping)
            if refusal is not None:
                self._refuse_database(refusal)

    def _refuse_database(self, refusal: str) -> None:
        """The recorder cannot use the database: stop the workers, none past its wait for
        its record, and exit 78 as for any configuration error."""
        try:  # SQLAlchemy's check again, here, for the message naming the file
            config.validate_database(self._conf)
        except config.ConfigError as exc:
            refusal = str(exc)
        self._refusal = refusal
        self._stopping = True

    def _on_worker_exit(self, record: WorkerRecord, wait_status: int, now: float) -> None:
        verdict = decisions.classify_exit(self._table, record, describe_exit(wait_status), now)
        record.beacon.close()
        LOG.log(verdict.level, "%s", verdict.message)

    # -- restarts, stops and starts asked for with mgr-supervisorctl

    def _stop_manager(self, tracked: ManagerRecord, now: float) -> None:
        if not tracked.stopped:
            LOG.info("manager %s: stop requested", tracked.spec.name)
        self._perform(decisions.stop_manager(self._table, tracked), now)

    def _start_manager(self, tracked: ManagerRecord) -> None:
        if decisions.start_manager(tracked):
            LOG.info("manager %s: start requested", tracked.spec.name)

    def _restart_manager(self, tracked: ManagerRecord, all_at_once: bool) -> None:
        LOG.info("manager %s: restart requested%s", tracked.spec.name, all_at_once * " (all)")
        stops = decisions.restart_manager(self._table, tracked, all_at_once)
        self._perform(stops, time.monotonic())

    # -- health

    def _enforce_kill_deadlines(self, now: float) -> None:
        for record in decisions.due_kills(self._table, now):
            LOG.warning(
                "%s did not stop within graceful_shutdown_timeout: killing it and its descendants",
                record.label,
            )
            process.kill_trees([record.pid])

    def _health_limits_set(self) -> bool:
        return any(tracked.spec.limits.any for tracked in self._table.managers.values())

    def _check_health(self, now: float) -> None:
        if now < self._next_health_check or not self._health_limits_set():
            return
        self._next_health_check = now + HEALTH_CHECK_INTERVAL
        for record in list(self._table.workers.values()):
            limits = self._table.managers[record.manager].spec.limits
            if record.stop_reason is not None or not limits.any:
                continue
            beacon = record.beacon.read()
            problem = health.check(limits, beacon, now - record.forked_at, now)
            if problem:
                ready = beacon.ready
                reason = StopReason.HEARTBEAT_TIMEOUT if ready else StopReason.START_TIMEOUT
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
            self._ask_to_stop(record, StopReason.MAX_RSS_MB, problem, now)

    def _perform(self, stops: list[decisions.Stop], now: float) -> None:
        for stop in stops:
            self._ask_to_stop(stop.record, stop.reason, stop.problem, now)

    def _ask_to_stop(
        self, record: WorkerRecord, reason: StopReason, problem: str, now: float
    ) -> None:
        """Ask one worker to stop gracefully; SIGKILL it at the graceful deadline.

        A worker judged unhealthy is a warning; a stop an operator or a reload asked for is
        news, not a problem."""
        level = logging.WARNING if reason.recycles else logging.INFO
        LOG.log(level, "%s: %s; stopping it", record.label, problem)
        record.stop_reason = reason
        timeout = self._conf.graceful_shutdown_timeout
        record.kill_at = now + timeout if timeout > 0 else None
        process.stop_gracefully(record.pid)

    # -- start what is due

    def _start_due_workers(self, now: float) -> None:
        if self._recorder is not None and self._recorder.due(now):
            self._recorder.start(self._parent_fds(keep_recorder_socket=True))
        for tracked, worker_id in decisions.due_starts(self._table, now):
            self._spawn(tracked, worker_id, now)

    def _spawn(self, tracked: ManagerRecord, worker_id: int, now: float) -> None:
        """Fork one worker; forwarded signals stay blocked until its handlers exist."""
        beacon = health.Beacon()
        label = f"{tracked.spec.name} worker({worker_id})"

        def main() -> int:
            return worker.run_worker(
                tracked.spec,
                worker_id,
                beacon=beacon,
                config_stamp=self._config_stamp,
                ready_fd=self._ready_w,
                recorder_path=self._recorder.path if self._recorder else "",
                parent_pid=self._pid,
            )

        try:
            # A session of its own: the parent finds what it leaves behind by it, and a
            # terminal's job control (SIGTTOU, Ctrl-C, hang-up) never reaches it. SIGTERM
            # when the parent dies: it cleans up.
            pid = children.fork_child(
                main,
                label=label,
                blocked=worker.FORWARDED_SIGNALS,
                parent_fds=self._parent_fds(),
                death_signal=signal.SIGTERM,
                new_session=True,
            )
        except OSError as exc:
            beacon.close()
            LOG.error("%s: fork failed: %s", label, exc)
            tracked.record_exit(now, failed_start=True)
            return
        if worker_id in tracked.started_ids:
            tracked.restarts += 1
        tracked.started_ids.add(worker_id)
        self._table.workers[pid] = WorkerRecord(
            tracked.spec.name, worker_id, pid, beacon, time.monotonic()
        )

    def _parent_fds(self, keep_recorder_socket: bool = False) -> list[int]:
        """Descriptors a child must not keep: its parent's loop, lock, sockets and pipes."""
        fds = [self._selector.fileno(), *self._wakeup.fds(), self._ready_r]
        fds += [self._lock_fd, *self._notifier.fds()]
        for server in (self._control, self._http):
            if server is not None:
                fds += server.fds()
        if self._recorder is not None and not keep_recorder_socket:
            fds += self._recorder.fds()
        return fds

    # -- what it says: logs, systemd

    def _log_state_changes(self, now: float) -> None:
        for name, tracked in self._table.managers.items():
            current = self._table.state_of(name, now, self._stopping)
            if current is not tracked.state:
                LOG.info("manager %s: %s -> %s", name, tracked.state.value, current.value)
                tracked.state = current
                tracked.note_state(current, now)

    def _notify_systemd(self, now: float) -> None:
        """READY=1 once every worker of every non-FATAL manager is ready; STATUS; WATCHDOG."""
        if self._notifier.watchdog_interval and now >= self._next_watchdog:
            self._notifier.watchdog()
            self._next_watchdog = now + self._notifier.watchdog_interval
        if not self._notifier.enabled:
            return
        status, all_ready = views.systemd_status(self._table)
        if all_ready and not self._announced_ready:
            self._announced_ready = True
            self._notifier.ready(status)
        else:
            self._notifier.status(status)

    def _exit_if_every_manager_is_fatal(self) -> None:
        if decisions.every_manager_fatal(self._table):
            LOG.error("every manager is FATAL and no worker runs: exiting with status 1")
            self._exit_status = 1
            self._stopping = True

    # -- control socket and HTTP endpoint (answered from the loop)

    def _expire_clients(self, now: float) -> None:
        """Close the connections of clients past their deadline (too slow to ask or read):
        a silent client costs a file descriptor for a few seconds, never a turn of the loop."""
        for server in (self._control, self._http):
            if server is not None:
                server.expire(now)

    def _on_control(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request (control.COMMANDS); `"managers": [NAME, ...]` names its targets.

        Without `managers`, `status` covers every manager and `stop` stops the supervisor.
        A NAME that is not running here refuses the whole request, with `unknown` listing it.
        """
        command = request["command"]
        if command == "restart":
            request = {**request, "managers": [request.get("manager")]}
        names = request.get("managers")
        if names is None and command in ("status", "stop"):
            if command == "status":
                return {"ok": True, "status": self.status()}
            self._pending_signals.append(signal.SIGTERM)
            return {"ok": True}
        if command == "reload":  # answered once it is applied or rejected
            if self._stopping:
                return {"ok": False, "error": "the supervisor is stopping"}
            rejected = self._reload()
            return {"ok": True} if rejected is None else {"ok": False, "error": rejected}
        if not isinstance(names, list) or not names:
            return {"ok": False, "error": f"{command}: 'managers' must be a list of names"}
        unknown = [name for name in names if not self._is_running_manager(name)]
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            return {"ok": False, "error": f"no manager named {listed}", "unknown": unknown}
        targets = [self._table.managers[name] for name in dict.fromkeys(names)]
        if command == "status":
            return {"ok": True, "status": self.status(names)}
        now = time.monotonic()
        for tracked in targets:
            if command == "restart":
                self._restart_manager(tracked, all_at_once=bool(request.get("all_at_once")))
            elif command == "stop":
                self._stop_manager(tracked, now)
            else:
                self._start_manager(tracked)
        return {"ok": True}

    def _is_running_manager(self, name: object) -> bool:
        tracked = self._table.managers.get(name) if isinstance(name, str) else None
        return tracked is not None and not tracked.removing

    def status(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """What runs, for `mgr-supervisorctl status [NAME ...]`, `/healthz` and `/metrics`:
        managers, then each worker."""
        now = time.monotonic()
        reloads = self._table.reloads
        return {
            "pid": self._pid,
            "uptime": now - self._started_at,
            "database": self._recorder.database_state() if self._recorder else "unknown",
            "report_age": self._recorder.report_age(now) if self._recorder else None,
            "rpc": config.rpc_enabled(self._conf),
            "reloads": {
                "applied": reloads.applied,
                "rejected": reloads.rejected,
                "last_at": reloads.last_at,
                "last_ok": reloads.last_ok,
            },
            "managers": self._table.status(now, self._stopping, names),
        }

    # -- stop

    def _begin_stop(self, now: float) -> None:
        """SIGTERM every worker; what is left at the graceful deadline is SIGKILLed with its
        descendants. The control socket closes first: a stopping supervisor takes no more
        requests."""
        self._notifier.stopping()
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._http is not None:
            self._http.close()
            self._http = None
        timeout = self._conf.graceful_shutdown_timeout
        LOG.info(
            "stopping: SIGTERM to %d worker(s) (graceful_shutdown_timeout=%ss)",
            len(self._table.workers),
            timeout,
        )
        for record in self._table.workers.values():
            record.stop_reason = StopReason.STOPPING
            process.stop_gracefully(record.pid)
        self._phase = Phase.STOPPING_WORKERS
        self._stop_deadline = now + timeout if timeout > 0 else None

    def _advance_stop(self, now: float) -> None:
        """The workers first; then the recorder, which writes the stops they sent."""
        self._child_exited = True  # reap at every pass of a stop
        if self._phase is Phase.STOPPING_WORKERS:
            if self._table.workers:
                self._kill_if_late(now, self._conf.graceful_shutdown_timeout, "worker(s)")
                return
            self._phase = Phase.STOPPING_RECORDER
            handle = self._recorder
            if handle is not None and handle.pid is not None:
                process.stop_gracefully(handle.pid)
                if self._stop_now:
                    process.kill_trees([handle.pid])
            self._stop_deadline = now + recorder.STOP_TIMEOUT
        if self._alive():
            self._kill_if_late(now, recorder.STOP_TIMEOUT, "service recorder(s)")
        else:
            self._phase = Phase.STOPPED

    def _kill_if_late(self, now: float, timeout: float, what: str) -> None:
        if self._stop_now or self._stop_deadline is None or now < self._stop_deadline:
            return
        alive = self._alive()
        LOG.warning(
            "%d %s still running after %ss: killing them and their descendants",
            len(alive),
            what,
            timeout,
        )
        self._stop_deadline = None
        process.kill_trees(alive)

    def _alive(self) -> list[int]:
        """What the stop waits for now: the workers, then the recorder."""
        if self._phase is Phase.STOPPING_WORKERS:
            return list(self._table.workers)
        handle = self._recorder
        return [] if handle is None or handle.pid is None else [handle.pid]
