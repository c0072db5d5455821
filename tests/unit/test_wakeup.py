"""The one wake-up and dispatch of the parent, the workers and the recorder."""

from __future__ import annotations

import os
import signal

from supervisor import wakeup


class Owner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def handle_hup(self) -> None:
        self.calls.append("hup")

    def handle_term(self) -> None:
        self.calls.append("term")

    def handle_posted(self, number: int) -> None:
        self.calls.append(f"posted {number}")


def test_each_number_once_in_order_and_unhandled_signals_ignored():
    owner = Owner()
    numbers = [signal.SIGHUP, signal.SIGUSR1, 0, signal.SIGHUP, signal.SIGTERM, signal.SIGHUP]
    wakeup.dispatch(owner, numbers)
    assert owner.calls == ["hup", "posted 0", "term"]


def test_a_real_signal_and_a_post_reach_the_loop_as_numbers():
    pipe = wakeup.Wakeup()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        assert pipe.read() == []
        pipe.route([signal.SIGUSR1])
        os.kill(os.getpid(), signal.SIGUSR1)
        pipe.post(0)
        assert pipe.read() == [signal.SIGUSR1, 0]
        assert pipe.read() == []
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGUSR1, previous)
        for fd in pipe.fds():
            os.close(fd)
