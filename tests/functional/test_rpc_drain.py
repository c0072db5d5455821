"""No call lost when a worker stops gracefully, on a real RabbitMQ (`MGR_TEST_TRANSPORT_URL`).

Four workers of one manager serve a steady stream of calls from two plain oslo.messaging
callers while the supervisor is driven through graceful operations only: SIGTERM to one
worker at a time (the supervisor replaces it) and rolling `mgr-supervisorctl restart NAME`.
A call that a stopping worker took must be answered; one it did not take must stay in the
queue for the other workers. A lost call shows as a MessagingTimeout at the caller.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

import pytest

from tests import rpcfixtures
from tests.functional.conftest import Supervisor, ctl
from tests.functional.test_rpc import configure, ready

WORKERS = 4
RESTARTED_WORKERS = 3  # a rolling restart replaces them one by one
CALL_TIMEOUT = 5
CALLERS = 2


class Load:
    """`CALLERS` threads calling `quick` back to back until stopped; what they saw."""

    def __init__(self, url: str, name: str) -> None:
        self._client = rpcfixtures.plain_client(url, name, timeout=CALL_TIMEOUT)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answered = 0
        self.lost: list[str] = []
        self._threads = [
            threading.Thread(target=self._call_until_stopped, name=f"caller-{i}", daemon=True)
            for i in range(CALLERS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CALL_TIMEOUT + 5)
        assert not any(t.is_alive() for t in self._threads), "a caller never returned"

    def answered_more(self, count: int) -> Callable[[], bool]:
        """True once `count` more calls than now have been answered."""
        target = self.answered + count
        return lambda: self.answered >= target

    def _call_until_stopped(self) -> None:
        value = 0
        while not self._stop.is_set():
            value += 1
            try:
                answer = self._client.call({}, "quick", value=value)
            except Exception as exc:  # MessagingTimeout: the call was lost
                with self._lock:
                    self.lost.append(f"{type(exc).__name__}: {exc}")
                continue
            with self._lock:
                if answer == value:
                    self.answered += 1
                else:
                    self.lost.append(f"answer {answer!r} to the call of {value}")


def replaced(supervisor: Supervisor, stops: int, workers: int = WORKERS) -> Callable[[], bool]:
    """True once `stops` workers have run cleanup_host() and the manager has its
    `workers` ready ones again (each replacement has called post_start_hook())."""
    return lambda: (
        supervisor.count("cleanup_host") >= stops
        and supervisor.count("post_start_hook") >= workers + stops
    )


def loaded(supervisor: Supervisor, broker: str, topic: str, workers: int) -> Load:
    """The supervisor running `workers` ready workers, and the load about to start."""
    configure(supervisor, broker, topic, workers=workers, start_secs=0)
    supervisor.start()
    ready(supervisor, workers)
    return Load(broker, topic)


@pytest.mark.timeout(60)
def test_no_call_is_lost_when_single_workers_get_sigterm(supervisor, broker, topic):
    with loaded(supervisor, broker, topic, WORKERS) as load:
        for stops in range(1, 7):  # the supervisor replaces each one
            supervisor.wait_for(load.answered_more(50), what="calls answered")
            os.kill(supervisor.workers()[0].pid, signal.SIGTERM)
            supervisor.wait_for(replaced(supervisor, stops), timeout=20, what="a replacement")
    print(f"{load.answered} calls answered and {len(load.lost)} lost over 6 SIGTERMs")
    assert load.lost == [], f"calls lost to SIGTERM: {load.lost}"
    assert load.answered > 0


@pytest.mark.timeout(60)
def test_no_call_is_lost_through_rolling_restarts(supervisor, broker, topic):
    with loaded(supervisor, broker, topic, RESTARTED_WORKERS) as load:
        for restarts in range(1, 3):  # every worker, one at a time
            supervisor.wait_for(load.answered_more(50), what="calls answered")
            result = ctl(supervisor, "restart", "alpha")
            assert result.returncode == 0, result.stderr
            stops = restarts * RESTARTED_WORKERS
            supervisor.wait_for(
                replaced(supervisor, stops, RESTARTED_WORKERS), timeout=30, what="the restart"
            )
    print(f"{load.answered} calls answered and {len(load.lost)} lost over 2 restarts")
    assert load.lost == [], f"calls lost to restart: {load.lost}"
    assert load.answered > 0
