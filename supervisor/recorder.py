"""The host's recorder: one child of the supervisor that writes every worker's service record.

Why a process of its own (docs/architecture.md, "Service records"): the parent's loop must
never wait on a database, and a worker running SQLAlchemy for its own record would copy
~10 MiB of the parent's pages and hold a database connection of its own. The recorder batches
what the workers ask for (`supervisor/record_client.py` is their side) into one transaction per
kind and pass: N starts, N reports, N stops each cost one commit, on one connection per host.

It listens on a Unix socket in `state_path` that the parent binds and keeps, so workers can
connect before the recorder runs and while it is restarted; it leads a session of its own and
dies with the parent at once (SIGKILL: a supervisor killed with SIGKILL leaves its rows to
age out, so the host reads down). An unreachable database is logged once when lost and once
when back; starts wait for it and are retried, reports made during an outage are lost, as in
nova. Its beacon carries the database state to the parent's `status`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import gc
import logging
import os
import selectors
import signal
import socket
import time
from typing import Any

import setproctitle
from oslo_config import cfg

from supervisor import children, control, health, logs, notifications, wakeup
from supervisor.db import UnusableDatabase
from supervisor.opts import PROJECT
from supervisor.record_client import decode_lines, encode

LOG = logging.getLogger(__name__)

SOCKET_NAME = "recorder.sock"
# A start the database could not take is tried again this often.
RETRY_SECONDS = 1.0
# Reports arrive spread over each report_interval, every worker on its own phase: they are
# written together, once per this window (at most a quarter of report_interval), so 256
# workers cost one transaction a second instead of 25.
REPORT_BATCH_SECONDS = 1.0
# After a crash, the next recorder starts this much later, doubling up to the maximum.
RESTART_DELAY_INITIAL = 0.5
RESTART_DELAY_MAX = 30.0
# A recorder that ran this long had no crash loop: the delay starts over.
RESTART_DELAY_RESET_AFTER = 10.0
# The parent waits this long for the recorder's last writes at a stop, then kills it.
STOP_TIMEOUT = 5.0
# The phase the recorder's beacon shows once it has written reports: since when is their age.
REPORTED = "reports written"
# At a stop, the recorder sends its last notifications for at most this long.
NOTIFY_TIMEOUT = 2.0
# The recorder's exit when it cannot use the database's URL or schema (EX_CONFIG).
EXIT_REFUSED = 78


@dataclasses.dataclass(eq=False)
class _Worker:
    """One worker's connection, and what the recorder knows of its row."""

    sock: socket.socket
    buffer: bytearray = dataclasses.field(default_factory=bytearray)
    key: tuple[str, int] | None = None  # (manager, worker id), from its first request
    pid: int = 0
    row_id: int | None = None
    told_to_wait: bool = False  # its start was answered "not written yet"


class Recorder:
    """The child's loop: read the workers' requests, write them in batches, answer."""

    def __init__(
        self,
        listener: socket.socket,
        host: str,
        report_interval: float,
        beacon: health.Beacon,
        db: Any,
        events: notifications.ServiceEvents | None = None,
    ) -> None:
        self._listener = listener
        self._host = host
        self._report_batch = min(REPORT_BATCH_SECONDS, report_interval / 4)
        self._next_report_flush: float | None = None
        self._db = db
        self._events = events  # service.update notifications, when a driver is set
        self._beacon = beacon
        self._selector = selectors.DefaultSelector()
        self._wakeup = wakeup.Wakeup()
        self._existing: list[_Worker] = []
        self._starts: dict[_Worker, None] = {}  # kept until written: an ordered set
        self._reports: collections.Counter[_Worker] = collections.Counter()
        self._stops: dict[int, int] = {}  # row id -> pid of the worker that stopped
        self._workers: set[_Worker] = set()
        self._next_retry: float | None = None
        self._reachable: bool | None = None  # unknown until the first call
        self._said = ""  # what the last failure was logged as
        self._stopping = False
        # The host's rows as they were when this recorder began: the first `existing` of
        # each worker is answered from here at once (at start every worker asks together).
        self._preloaded: dict[tuple[str, int], Any] = {}

    def run(self) -> int:
        # Blocked since the fork: a signal during the db import would have run the parent's
        # handler, whose wake-up fd is closed here, and been lost. Pending, it arrives now.
        self._wakeup.route((signal.SIGTERM, signal.SIGHUP, signal.SIGINT))
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, self._accept)
        self._selector.register(
            self._wakeup, selectors.EVENT_READ, lambda: wakeup.dispatch(self, self._wakeup.read())
        )
        rows = self._call(self._first_read, raise_unusable=True) or []
        self._preloaded = {(row.manager, row.worker_id): row for row in rows}
        while not self._stopping:
            deadlines = [d for d in (self._next_retry, self._next_report_flush) if d is not None]
            if self._events is not None and (due := self._events.due()) is not None:
                deadlines.append(time.monotonic() + due)
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in self._selector.select(timeout):
                key.data()
            self._flush()
            if self._events is not None:
                self._events.sweep()
        # The parent stops the recorder after its workers: take what they sent last.
        self._accept()
        for worker in list(self._workers):
            self._read(worker)
        self._flush(final=True)
        if self._events is not None:
            self._events.close(NOTIFY_TIMEOUT)
        return 0

    # -- reading

    def handle_term(self) -> None:
        """The parent stops the recorder last, once its workers are gone."""
        self._stopping = True

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the worker retries at a report
                LOG.warning("recorder: cannot accept a worker's connection: %s", exc)
                return
            sock.setblocking(False)
            worker = _Worker(sock)
            self._workers.add(worker)
            self._selector.register(
                sock, selectors.EVENT_READ, functools.partial(self._read, worker)
            )

    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                data = worker.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._drop(worker)
                return
            worker.buffer += data
            for message in decode_lines(worker.buffer):
                self._on_request(worker, message)

    def _on_request(self, worker: _Worker, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op in ("existing", "start"):
            try:
                worker.key = (str(message["manager"]), int(message["worker_id"]))
                worker.pid = int(message["pid"])
            except (KeyError, TypeError, ValueError):
                LOG.debug("recorder: malformed request %r", message)
                return
            if op == "existing" and worker.key in self._preloaded:
                self._answer(worker, "existing", self._preloaded.pop(worker.key))
            elif op == "existing":
                self._existing.append(worker)
            else:
                self._starts[worker] = None
        elif op == "report" and worker.row_id is not None:
            self._reports[worker] += 1
            if self._next_report_flush is None:
                self._next_report_flush = time.monotonic() + self._report_batch
        elif op == "stopped":
            self._starts.pop(worker, None)
            self._reports.pop(worker, None)
            if worker.row_id is not None:
                self._stops[worker.row_id] = worker.pid

    def _drop(self, worker: _Worker) -> None:
        """A closed connection: a dead worker's row is left to age out (never reported)."""
        self._workers.discard(worker)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(worker.sock)
        worker.sock.close()
        self._starts.pop(worker, None)
        self._reports.pop(worker, None)

    # -- writing: one transaction per kind, in the order that keeps a restart right

    def _flush(self, final: bool = False) -> None:
        now = time.monotonic()
        if self._existing:
            asking, self._existing = self._existing, []
            rows = self._call(self._db.services_get, self._host, {w.key for w in asking}) or {}
            for worker in asking:
                self._answer(worker, "existing", rows.get(worker.key))
        if self._stops:
            if self._call(self._db.services_mark_stopped, self._stops) is not None:
                if self._events is not None:
                    self._events.stopped(self._stops)
                self._stops = {}
            elif final:
                self._stops = {}
        retry_due = self._next_retry is None or now >= self._next_retry or final
        if self._starts and retry_due:
            starting = list(self._starts)
            pids = {w.key: w.pid for w in starting if w.key is not None}
            rows = self._call(self._start_rows, pids)
            if rows is None:
                self._next_retry = now + RETRY_SECONDS
                for worker in starting:  # go on without it; the row follows when written
                    if not worker.told_to_wait:
                        worker.told_to_wait = True
                        self._answer(worker, "start", None)
            else:
                self._next_retry = None
                self._starts = {}
                if self._events is not None:
                    self._events.written(rows.values())
                for worker in starting:
                    row = rows.get(worker.key)
                    worker.row_id = None if row is None else row["id"]
                    self._answer(worker, "start", row)
        report_due = self._next_report_flush is not None and now >= self._next_report_flush
        if report_due or final:
            self._next_report_flush = None
        if self._reports and (report_due or final):
            reporting, self._reports = self._reports, collections.Counter()
            counts = {w.row_id: n for w, n in reporting.items() if w.row_id is not None}
            rows = self._call(self._db.services_report, counts)
            if rows is None:
                return  # made during an outage: lost, as in nova
            self._beacon.set_phase(REPORTED)  # when: the parent's report age
            if self._events is not None:
                self._events.written(rows.values())
            for worker in reporting:
                row = rows.get(worker.row_id)
                if row is None:  # deleted by an operator while it ran: made again
                    self._starts[worker] = None
                else:
                    self._answer(worker, "report", row)

    def _first_read(self) -> list[Any]:
        """Before any worker is answered: the schema made in an empty database or checked
        (an `UnusableDatabase` here refuses the supervisor's start), then the host's rows."""
        self._db.ensure_schema_once()
        return self._db.service_get_all(self._host)

    def _start_rows(self, pids: dict[tuple[str, int], int]) -> dict[tuple[str, int], Any]:
        # The database may have been down when this recorder began: the schema is made here.
        self._db.ensure_schema_once()
        return self._db.services_start(self._host, pids)

    def _call(self, function: Any, *args: Any, raise_unusable: bool = False) -> Any:
        """A database call; None when the database cannot be reached (logged once).

        A schema this code cannot use is raised with `raise_unusable`, else waited out as an
        outage (an operator may run `db sync` while the workers go on).
        """
        failure = None
        try:
            result = function(*args)
        except UnusableDatabase as exc:
            if raise_unusable:
                raise
            failure = exc
        except Exception as exc:
            failure = exc
        # Logged outside the except block: oslo.log would add the exception's text, and a
        # driver's text may quote the connection. Once per change, not per retry.
        if failure is not None:
            said = self._describe(failure)
            if self._reachable is not False or said != self._said:
                LOG.debug("recorder: %s failed", function.__name__, exc_info=failure)
                LOG.error("%s; service records wait for it", said)
                self._said = said
            self._set_reachable(False)
            return None
        if self._reachable is False:
            LOG.info("the database is reachable again")
            self._said = ""
        self._set_reachable(True)
        return result

    def _describe(self, failure: BaseException) -> str:
        if isinstance(failure, UnusableDatabase):
            return f"the database cannot be used: {failure}"
        refused = self._db.refusal(failure)
        if refused is not None:
            return f"the database refused the connection: {refused}"
        return f"the database is unreachable ({type(failure).__name__})"

    def _set_reachable(self, reachable: bool) -> None:
        self._reachable = reachable
        self._beacon.set_database_ok(reachable)

    def _answer(self, worker: _Worker, op: str, row: Any) -> None:
        """Answer without ever waiting: a worker that does not read loses its connection
        (and asks again at its next report), never a line cut in half."""
        message = encode({"op": op, "row": None if row is None else dict(row.items())})
        try:
            sent = worker.sock.send(message)
        except OSError:
            sent = -1
        if sent != len(message):
            # Gone, or not reading: what it sent before it went (its stop, say) is read
            # first, never closed unread with the socket.
            self._read(worker)
            self._drop(worker)


def run_recorder(
    listener: socket.socket, conf: cfg.ConfigOpts, beacon: health.Beacon, refusal_fd: int
) -> int:
    """The recorder's main after `children.fork_child`; its exit status.

    A connection URL or a schema it cannot use is written to `refusal_fd`, for the parent
    to say in one line, and ends it with EXIT_REFUSED.
    """
    setproctitle.setproctitle(f"{PROJECT}: recorder")
    logs.set_process_name("recorder")
    try:
        db_api = _import_db_api(conf)
        notifier = notifications.get_notifier(PROJECT, conf.host, conf)
        events = None
        if notifier.is_enabled():
            events = notifications.ServiceEvents(
                notifier, conf.service_down_time, db_api.service_liveness
            )
        recorder = Recorder(listener, conf.host, conf.report_interval, beacon, db_api, events)
        return recorder.run()
    except UnusableDatabase as exc:
        os.write(refusal_fd, f"[database] connection: {exc}".encode())
        return EXIT_REFUSED


def _import_db_api(conf: cfg.ConfigOpts) -> Any:
    """The db api, imported and configured here, in the child: the ORM, oslo.db and the
    driver are never the parent's to pay.

    That import is on every worker's path to ready (each waits for its record), so the
    collector stays off while it runs and its modules join the permanent generation:
    collections during it would walk every new object again, and every worker's start
    would wait for them.
    """
    gc.disable()
    try:
        from supervisor.db import api as db_api

        db_api.configure(conf)
    finally:
        gc.freeze()
        gc.enable()
    return db_api


class RecorderProcess:
    """The parent's side: the socket it keeps, the child it forks, restarts and stops last."""

    def __init__(self, state_path: str, conf: cfg.ConfigOpts) -> None:
        self.path = os.path.join(state_path, SOCKET_NAME)
        self.listener = control.listen_at(self.path, "service recorder")
        self.conf = conf
        self.beacon = health.Beacon()
        self.pid: int | None = None
        self.started_at = 0.0
        self.not_before = 0.0
        self._delay = RESTART_DELAY_INITIAL
        self._starts = 0
        self._refusal_r = -1  # the read end of the running recorder's refusal pipe

    def fds(self) -> list[int]:
        return [self.listener.fileno()] + ([self._refusal_r] if self._refusal_r >= 0 else [])

    def due(self, now: float) -> bool:
        return self.pid is None and now >= self.not_before

    def start(self, parent_fds: list[int]) -> None:
        """Fork the recorder; blocked signals stay blocked until its handlers exist."""
        refusal_r, refusal_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

        def main() -> int:
            return run_recorder(self.listener, self.conf, self.beacon, refusal_w)

        try:
            # A session of its own; killed with the parent: its rows then age out.
            pid = children.fork_child(
                main,
                label="recorder",
                blocked={signal.SIGTERM, signal.SIGHUP, signal.SIGINT},
                parent_fds=[*parent_fds, refusal_r],
                new_session=True,
            )
        except OSError as exc:
            os.close(refusal_r)
            os.close(refusal_w)
            LOG.error("recorder: fork failed: %s", exc)
            self._schedule_restart(time.monotonic())
            return
        os.close(refusal_w)
        self._refusal_r = refusal_r
        self.pid = pid
        self.started_at = time.monotonic()
        self._starts += 1

    def on_exit(self, status: str, now: float, stopping: bool) -> str | None:
        """Reaped: restart it later, or return the refusal that ends the supervisor's start.

        The first recorder's refusal (a URL or schema it cannot use) comes before it
        answered any worker, so no hook has run: the supervisor stops its workers and exits
        78. A later recorder's refusal is logged and it is restarted, the workers untouched.
        """
        self.pid = None
        refusal = self._read_refusal()
        if stopping:
            return None
        if refusal and self._starts == 1:
            return refusal
        if now - self.started_at >= RESTART_DELAY_RESET_AFTER:
            self._delay = RESTART_DELAY_INITIAL
        LOG.error(
            "the service recorder %s; restarting it in %.1fs",
            f"refused the database: {refusal}" if refusal else f"ended with {status}",
            self._delay,
        )
        self._schedule_restart(now)
        return None

    def _read_refusal(self) -> str:
        if self._refusal_r < 0:
            return ""
        try:
            text = os.read(self._refusal_r, 4096).decode(errors="replace")
        except BlockingIOError:
            text = ""
        os.close(self._refusal_r)
        self._refusal_r = -1
        return text

    def _schedule_restart(self, now: float) -> None:
        self.not_before = now + self._delay
        self._delay = min(self._delay * 2, RESTART_DELAY_MAX)

    def database_state(self) -> str:
        return self.beacon.read().database

    def report_age(self, now: float) -> float | None:
        """Seconds since the recorder last wrote the workers' reports; None before the first."""
        snapshot = self.beacon.read()
        return now - snapshot.phase_since if snapshot.phase == REPORTED else None

    def close(self) -> None:
        if self._refusal_r >= 0:
            os.close(self._refusal_r)
            self._refusal_r = -1
        self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.beacon.close()
