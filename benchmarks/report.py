"""The workers' side of the probe: one datagram per lifecycle event, sent to the harness.

Standard library only, so every target can import it, supervisord's program included. A send
that fails is dropped: the benchmark must never decide whether a worker lives.
"""

from __future__ import annotations

import os
import socket

# A worker blocks at most this long when the harness's receive queue is full.
SEND_TIMEOUT_SECONDS = 2.0

_sockets: dict[int, socket.socket] = {}


def report(probe: str, event: str) -> None:
    """Send `EVENT PID` to the harness's unix datagram socket at `probe`."""
    pid = os.getpid()
    sock = _sockets.get(pid)
    if sock is None:
        # One socket per process: one inherited over fork() belongs to the parent.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(SEND_TIMEOUT_SECONDS)
        _sockets[pid] = sock
    try:
        sock.sendto(f"{event} {pid}".encode(), probe)
    except OSError:
        pass
