"""The harness's side of the probe: a loopback UDP socket, timestamped on receipt.

A listener thread stamps each datagram with `time.monotonic()` as it arrives, so a reading
costs a worker one `sendto()` and the harness no polling. UDP rather than a unix datagram
socket: there a sender blocks once 10 datagrams wait (net.unix.max_dgram_qlen), which would
stall workers whenever N of them report at once; a large receive buffer makes UDP's only
failure, a drop, one that `dropped()` reports.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SO_RCVBUFFORCE = 33  # linux/socket.h; not exported by the socket module


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
    """The socket every worker reports to, one `EVENT PID` datagram per event."""

    RECEIVE_BUFFER_BYTES = 8 * 2**20

    def __init__(self) -> None:
        super().__init__()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # root may exceed net.core.rmem_max
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.RECEIVE_BUFFER_BYTES)
        except PermissionError:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECEIVE_BUFFER_BYTES)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._closed = False
        self._thread = threading.Thread(target=self._listen, name="probe", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while True:
            try:
                data = self._sock.recv(256)
            except OSError:
                return
            if not data:  # the empty datagram of close()
                return
            kind, _, pid = data.decode(errors="replace").partition(" ")
            if pid.isdigit():
                self.record(kind, int(pid))

    def dropped(self) -> int:
        """Datagrams the kernel dropped for a full receive buffer (/proc/net/udp)."""
        local = f"0100007F:{self.port:04X}"
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1] == local:
                return int(fields[-1])
        return 0

    def close(self) -> None:
        """Stop listening; workers still sending lose their datagrams, which they ignore."""
        if self._closed:
            return
        self._closed = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", ("127.0.0.1", self.port))
        self._thread.join(timeout=5)
        self._sock.close()


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
