"""sd_notify, honestly: READY only when every worker is, STATUS a person reads, WATCHDOG.

oslo.service's helpers send only READY=1 and read `$NOTIFY_SOCKET` on every call; we take
the socket out of the environment once, at start, so workers (and whatever managers start)
never inherit it and cannot speak for the unit.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

LOG = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify datagrams to systemd; does nothing when not run by systemd."""

    def __init__(self, environ: MutableMapping[str, str] = os.environ) -> None:
        address = environ.pop("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_interval = _watchdog_interval(environ)
        self._last_status = ""

    def fds(self) -> list[int]:
        return [] if self._socket is None else [self._socket.fileno()]

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *fields: str) -> None:
        if self._socket is None:
            return
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            LOG.debug("sd_notify %s failed: %s", fields, exc)

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def status(self, status: str) -> None:
        """Send STATUS= only when it says something new."""
        if status != self._last_status:
            self._last_status = status
            self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")


def _watchdog_interval(environ: MutableMapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC, if the watchdog is meant for this process."""
    usec = environ.pop("WATCHDOG_USEC", "")
    pid = environ.pop("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1e6 / 2
