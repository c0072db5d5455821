"""A worker's service record, as the worker sees it: a client of the host's recorder.

The recorder (`supervisor/recorder.py`) does every database write of the host. A worker asks
it over a Unix socket for its row before `init_host()`, to create or update it after, reports
from its main thread every `report_interval` while it is ready and not hung, and says
"stopped" when the supervisor stops it. No SQLAlchemy runs in a worker for its record: none
of the parent's pages are copied for it, and the database sees one connection per host.

Messages are JSON lines. Worker to recorder: `{"op": "existing" | "start", "manager",
"worker_id", "pid"}`, then `{"op": "report"}` and `{"op": "stopped"}`. Recorder to worker:
`{"op": "existing" | "start" | "report", "row": {...} | null}`. A start the database cannot
take now is answered with a null row at once, and again with the row once it is written.
`manager` is the manager's NAME (its `[manager:NAME]` section), never its RPC topic.
"""

from __future__ import annotations

import datetime
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from supervisor import health

LOG = logging.getLogger(__name__)

# How long the lifecycle waits for the recorder's answer before going on without it. The
# recorder answers at once when the database is known to be down; this bounds a recorder that
# is itself still starting (importing the ORM) or stuck in a call to an unresponsive database.
CREATE_WAIT_SECONDS = 5.0
DATETIME_FIELDS = frozenset({"created_at", "updated_at", "deleted_at", "last_seen_up"})


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, default=_datetime_to_text).encode() + b"\n"


def _datetime_to_text(value: object) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def decode_lines(buffer: bytearray) -> Iterator[dict[str, Any]]:
    """The complete JSON lines in `buffer` (removed from it); a malformed one is skipped."""
    while (end := buffer.find(b"\n")) >= 0:
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            yield message


class ServiceRef:
    """The record a hook gets as `service_ref`: `ref.disabled` or `ref["disabled"]`.

    The same object stays current: each report brings the row back (an operator's
    `services disable` shows here within `report_interval`).
    """

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields: dict[str, Any] = {}
        self.update(fields)

    def update(self, fields: Mapping[str, Any]) -> None:
        self._fields = {
            key: datetime.datetime.fromisoformat(value)
            if key in DATETIME_FIELDS and isinstance(value, str)
            else value
            for key, value in fields.items()
        }

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_fields"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def get(self, key: str, default: Any = None) -> Any:
        return self._fields.get(key, default)

    def keys(self) -> Any:
        return self._fields.keys()

    def items(self) -> Any:
        return self._fields.items()

    def __repr__(self) -> str:
        fields = self._fields
        return (
            f"<ServiceRef {fields.get('id')} {fields.get('host')}/{fields.get('manager')}"
            f"({fields.get('worker_id')}) pid {fields.get('pid')}>"
        )


class ServiceRecord:
    """One worker's end of the recorder's socket.

    Replies are read by the worker's main thread (`on_readable`); the run thread that drives
    the hooks waits for them on events, never reads the socket itself.
    """

    def __init__(
        self,
        socket_path: str,
        manager: str,
        worker_id: int,
        pid: int,
        beacon: health.Beacon,
        limits: Callable[[], health.HealthLimits],
    ) -> None:
        self.label = f"{manager} worker({worker_id})"
        self.ref: ServiceRef | None = None
        self._path = socket_path
        self._identity = {"manager": manager, "worker_id": worker_id, "pid": pid}
        self._beacon = beacon
        self._limits = limits  # the limits in force: a reload may change them
        self._forked_at = time.monotonic()
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._send_lock = threading.Lock()
        self._existing_row: dict[str, Any] | None = None
        self._existing_answered = threading.Event()
        self._started = threading.Event()
        self._start_wanted = False
        self._next_report = 0.0
        self._unreachable_logged = False

    # -- the lifecycle's calls (run thread, or the main thread before the run thread)

    def existing(self) -> ServiceRef | None:
        """The row this worker had before (for `init_host(service_ref)`), or None.

        Waits a little at most: a database that does not answer must not hold up a start.
        """
        if self._send({"op": "existing", **self._identity}):
            self._existing_answered.wait(CREATE_WAIT_SECONDS)
        row = self._existing_row
        return None if row is None else ServiceRef(row)

    def create(self) -> ServiceRef | None:
        """Create or update the row; wait a little for it, then go on without it."""
        if self.request_start():
            self._started.wait(CREATE_WAIT_SECONDS)
        return self.ref

    def request_start(self) -> bool:
        """Ask for the row to be created or updated; the answer comes to `on_readable`."""
        self._start_wanted = True
        return self._send({"op": "start", **self._identity})

    @property
    def answered(self) -> bool:
        """The recorder answered the start: with the row, or with none (database down)."""
        return self._started.is_set()

    def give_up_waiting(self) -> None:
        """A stop began: `existing()` and `create()` return at once, without an answer."""
        self._existing_answered.set()
        self._started.set()

    def stop(self) -> None:
        """A stop the supervisor asked for: no more reports, and the row says stopped."""
        self._start_wanted = False
        self._send({"op": "stopped"})
        self.close()

    def close(self) -> None:
        with self._send_lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    # -- the main thread's loop

    def fileno(self) -> int | None:
        sock = self._sock
        return None if sock is None else sock.fileno()

    def on_readable(self) -> None:
        """Read the recorder's answers; a closed connection is reopened at the next report."""
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            LOG.debug("%s: the recorder closed the connection", self.label)
            self.close()
            # Whatever the lifecycle waits for will not come on this connection: go on
            # without it; the row is asked for again at the next report.
            self.give_up_waiting()
            return
        self._buffer += data
        for message in decode_lines(self._buffer):
            self._on_message(message)

    def seconds_to_report(self, now: float, interval: float) -> float | None:
        if not self._start_wanted:
            return None
        if not self._next_report:
            self._next_report = now + interval
        return max(0.0, self._next_report - now)

    def report_if_due(self, now: float, interval: float) -> None:
        """Every `report_interval`: a report, if this worker is ready and not hung.

        A worker whose hook or periodic task the supervisor would judge hung is not reported
        up, though this thread still runs. A lost connection is reopened here, and the row
        asked for again.
        """
        if not self._start_wanted or not self._next_report or now < self._next_report:
            return
        self._next_report = now + interval
        beacon = self._beacon.read()
        if not beacon.ready or health.check(self._limits(), beacon, now - self._forked_at, now):
            return
        if self._sock is None:
            if self.connect():
                self.request_start()
        elif self.ref is not None:
            self._send({"op": "report"})

    # -- plumbing

    def _on_message(self, message: dict[str, Any]) -> None:
        row = message.get("row")
        op = message.get("op")
        if op == "existing":
            self._existing_row = row if isinstance(row, dict) else None
            self._existing_answered.set()
        elif op in ("start", "report"):
            if isinstance(row, dict):
                if self.ref is None:
                    self.ref = ServiceRef(row)
                else:
                    self.ref.update(row)
            if op == "start":
                self._started.set()

    def connect(self) -> bool:
        """Open the connection (the main thread only: it is the one that reads it)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(CREATE_WAIT_SECONDS)
        try:
            sock.connect(self._path)
        except OSError as exc:
            sock.close()
            if not self._unreachable_logged:
                self._unreachable_logged = True
                LOG.warning(
                    "%s: cannot reach the service recorder (%s); trying again at each report",
                    self.label,
                    exc.strerror or type(exc).__name__,
                )
            return False
        self._unreachable_logged = False
        with self._send_lock:
            self._sock = sock
        return True

    def _send(self, message: Mapping[str, Any]) -> bool:
        """Send one message if connected; a broken connection is reopened at a report."""
        with self._send_lock:
            if self._sock is None:
                return False
            try:
                self._sock.sendall(encode(message))
            except OSError:
                self._sock.close()
                self._sock = None
                return False
            return True
