"""The workers' side of the probe: one UDP datagram per lifecycle event, sent to the harness.

Standard library only, so every target can import it, supervisord's program included. The
socket is non-blocking and a send that fails is dropped: the benchmark must never decide
whether, or when, a worker goes on.

`collect_once_later()` is the steady-state memory trigger every target's worker calls once
it has reported `ready`: one full collection, the same delay later in every peer.
"""

from __future__ import annotations

import os
import socket

# After `ready`: long enough that the harness reads the fresh memory (at startup + 1 s)
# before any worker collects, short enough to be over by the end of the 10 s idle window.
COLLECT_DELAY_SECONDS = 4.0

_sockets: dict[int, socket.socket] = {}
_collecting: set[int] = set()


def report(probe: str, event: str) -> None:
    """Send `EVENT PID` to the harness's socket at `probe` ("127.0.0.1:PORT")."""
    pid = os.getpid()
    sock = _sockets.get(pid)
    if sock is None:
        # One socket per process: one inherited over fork() belongs to the parent.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        _sockets[pid] = sock
    host, _, port = probe.rpartition(":")
    try:
        sock.sendto(f"{event} {pid}".encode(), (host, int(port)))
    except OSError:
        pass


def collect_once_later(probe: str, delay: float = COLLECT_DELAY_SECONDS) -> None:
    """In `delay` seconds run one full `gc.collect()`, then report `collected`.

    A worker that lives for hours runs full collections, which write to the GC header of
    every object it inherited and so copy the parent's heap page by page: this one makes
    that happen in every peer at the same moment. Once per process (a worker reset in
    place does not trigger it again); the timer's thread is a daemon, so it never delays
    an exit. `threading` is imported here, not at the top: oslo-eventlet's worker imports
    this module before eventlet patches it, and its timer must be a green thread.
    """
    import gc
    import threading

    pid = os.getpid()
    if pid in _collecting:
        return
    _collecting.add(pid)

    def collect() -> None:
        gc.collect()
        report(probe, "collected")

    timer = threading.Timer(delay, collect)
    timer.daemon = True
    timer.start()
