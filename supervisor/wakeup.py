"""Signals as numbers on a pipe, handled by one loop in its own thread (docs/architecture.md,
"Signals"): the one wake-up and dispatch of the parent, each worker and the recorder.

As cotyledon's `SignalManager` does: a handler does nothing but let Python write the
signal's number to the pipe (`signal.set_wakeup_fd`); the loop waits on the pipe with its
other descriptors, reads the numbers and calls `handle_<name>` on its owner, never inside a
handler. A thread of the process wakes the same loop with `post()`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterable

LOG = logging.getLogger(__name__)


class Wakeup:
    """The pipe a loop waits on: signal numbers, and what its threads `post()`."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def route(self, signals: Iterable[int]) -> None:
        """Deliver `signals` here. Caught, not ignored: each is reset to its default in
        whatever this process execs. Again after code that may have installed handlers of
        its own (a manager module imported by a reload)."""
        signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        for sig in signals:
            signal.signal(sig, _wake_only)

    def fileno(self) -> int:
        return self._r

    def fds(self) -> list[int]:
        """Both ends: what a forked child closes."""
        return [self._r, self._w]

    def post(self, number: int) -> None:
        """Wake the loop from another thread with a number no signal has (0)."""
        os.write(self._w, bytes([number]))

    def read(self) -> list[int]:
        """The numbers written since the last read, in order (none if nothing was)."""
        with contextlib.suppress(BlockingIOError):
            return list(os.read(self._r, 4096))
        return []


def _wake_only(signum: int, frame: object) -> None:
    """The signal's number reaches the loop through the wake-up fd."""


def dispatch(owner: object, numbers: Iterable[int]) -> None:
    """Each distinct number once, in order, to `owner.handle_<name>` (`handle_term` for
    SIGTERM; `handle_posted(number)` for a posted one): a burst of SIGHUPs is one reload. A
    signal the owner has no handler for is ignored."""
    for number in dict.fromkeys(numbers):
        try:
            name = signal.Signals(number).name[3:].lower()
        except ValueError:
            owner.handle_posted(number)
            continue
        handler = getattr(owner, f"handle_{name}", None)
        if handler is None:
            LOG.debug("ignoring signal SIG%s", name.upper())
        else:
            handler()
