"""The workers' side of the probe: one UDP datagram per lifecycle event, sent to the harness.

Standard library only, so every target can import it, supervisord's program included. The
socket is non-blocking and a send that fails is dropped: the benchmark must never decide
whether, or when, a worker goes on.
"""

from __future__ import annotations

import os
import socket

_sockets: dict[int, socket.socket] = {}


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
