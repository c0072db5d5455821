"""The harness's side of the probe: a unix datagram socket, timestamped on receipt.

A listener thread stamps each datagram with `time.monotonic()` as it arrives, so a reading
costs the workers one `sendto()` and the harness no polling.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Event:
    """One datagram: what happened, in which process, when the harness got it."""

    at: float
    kind: str
    pid: int


class Recorder:
    """Collects `Event`s; `wait()` blocks until the events since a mark satisfy a test."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._changed = threading.Condition()

    def record(self, kind: str, pid: int) -> None:
        """Stamp an event now; called by the thread that receives it."""
        at = time.monotonic()
        with self._changed:
            self._events.append(Event(at, kind, pid))
            self._changed.notify_all()

    def mark(self) -> int:
        """Where the events of the next measurement start."""
        with self._changed:
            return len(self._events)

    def wait(
        self, since: int, until: Callable[[Sequence[Event]], float | None], timeout: float
    ) -> tuple[float | None, list[Event]]:
        """Wait until `until(events since the mark)` gives the moment a condition was met.

        Returns that moment (None on timeout) and the events seen.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while (met := until(self._events[since:])) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return met, self._events[since:]


class Probe(Recorder):
    """The unix datagram socket every worker reports to, `EVENT PID` per datagram."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(path)
        self._closed = False
        self._thread = threading.Thread(target=self._listen, name="probe", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while True:
            try:
                data = self._sock.recv(256)
            except OSError:
                return
            if not data:  # shut down by close()
                return
            kind, _, pid = data.decode(errors="replace").partition(" ")
            if pid.isdigit():
                self.record(kind, int(pid))

    def close(self) -> None:
        """Unbind; workers still sending get ECONNREFUSED, which they ignore."""
        if self._closed:
            return
        self._closed = True
        self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)
        if os.path.exists(self.path):
            os.unlink(self.path)


def first_by_pid(
    events: Sequence[Event], kind: str, exclude: Sequence[int] = ()
) -> dict[int, float]:
    """When each process first reported `kind`, ignoring the pids in `exclude`."""
    firsts: dict[int, float] = {}
    for event in events:
        if event.kind == kind and event.pid not in exclude and event.pid not in firsts:
            firsts[event.pid] = event.at
    return firsts


def nth(times: dict[int, float], count: int) -> float | None:
    """When the `count`-th process got there (None if fewer did): the last of a group."""
    if count <= 0 or len(times) < count:
        return None
    return sorted(times.values())[count - 1]
