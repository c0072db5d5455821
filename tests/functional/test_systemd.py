"""sd_notify as systemd sees it: a notify socket of our own, listening."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.functional.conftest import ctl

FAST_FATAL = {"start_retries": 1, "restart_backoff_initial": 0.1, "fail_in": "init_host"}


class NotifyListener:
    """What systemd would receive on $NOTIFY_SOCKET, with the moment of each datagram."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.sock.settimeout(0.05)
        self.messages: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append(fields)

    def has(self, key: str, value: str | None = None) -> bool:
        return any(key in m and (value is None or m[key] == value) for m in self.drain())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    yield listener
    listener.close()


def test_ready_only_once_every_worker_has_returned_from_post_start_hook(supervisor, notify):
    supervisor.configure(
        {"alpha": {"workers": 3, "slow_in": "post_start_hook", "slow_seconds": 0.5}}
    )
    supervisor.start(env={"NOTIFY_SOCKET": notify.address})
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    ready_at = next(i for i, m in enumerate(notify.messages) if "READY" in m)
    assert supervisor.count("post_start_hook-done") == 3
    assert notify.messages[ready_at]["STATUS"] == "3/3 workers ready: alpha 3/3"
    assert all("READY" not in m for m in notify.messages[:ready_at])


def test_abstract_notify_socket_and_workers_do_not_inherit_it(supervisor, tmp_path):
    listener = NotifyListener(f"@mgr-supervisor-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        supervisor.configure({"alpha": {"workers": 2}})
        supervisor.start(env={"NOTIFY_SOCKET": listener.address})
        supervisor.wait_for(lambda: listener.has("READY", "1"), what="READY=1")
        seen = [w[2] for w in supervisor.events() if w[1] == "environ"]
        assert seen == ["NOTIFY_SOCKET=-", "NOTIFY_SOCKET=-"], "what the managers see"
    finally:
        listener.close()


def test_reload_says_reloading_then_ready(supervisor, notify):
    supervisor.configure({"alpha": {}})
    supervisor.start(env={"NOTIFY_SOCKET": notify.address})
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    notify.messages.clear()
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1 after the reload")
    reloading = next(m for m in notify.messages if "RELOADING" in m)
    assert before <= int(reloading["MONOTONIC_USEC"]) <= before + 10_000_000
    assert notify.messages.index(reloading) < next(
        i for i, m in enumerate(notify.messages) if "READY" in m
    )


def test_a_rejected_reload_says_so_in_status(supervisor, notify):
    supervisor.configure({"alpha": {}})
    supervisor.start(env={"NOTIFY_SOCKET": notify.address})
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    notify.messages.clear()
    supervisor.configure({"alpha": {"workers": "many"}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1 after the rejection")
    ready = next(m for m in notify.messages if "READY" in m)
    assert "reload rejected" in ready["STATUS"] and "workers" in ready["STATUS"]


def test_stopping_is_announced(supervisor, notify):
    supervisor.configure({"alpha": {}})
    supervisor.start(env={"NOTIFY_SOCKET": notify.address})
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    assert supervisor.stop() == 0
    assert notify.has("STOPPING", "1")


def test_a_fatal_manager_does_not_hold_back_ready_and_status_names_it(supervisor, notify):
    supervisor.configure({"alpha": FAST_FATAL, "beta": {}})
    supervisor.start(env={"NOTIFY_SOCKET": notify.address})
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    ready = next(m for m in notify.messages if "READY" in m)
    assert ready["STATUS"] == (
        "FATAL: alpha (2 failed starts); 1/2 workers ready: alpha 0/1 FATAL, beta 1/1"
    )
    assert any("BACKOFF" in m.get("STATUS", "") for m in notify.messages)


def test_a_manager_stopped_on_request_is_no_alarm(supervisor, notify):
    supervisor.configure({"alpha": FAST_FATAL, "beta": {}, "gamma": {}})
    supervisor.start(env={"NOTIFY_SOCKET": notify.address})
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    assert [m["STATUS"] for m in notify.messages if "STATUS" in m][-1].startswith(
        "FATAL: alpha (2 failed starts); 2/3 workers ready: alpha 0/1 FATAL"
    )
    assert ctl(supervisor, "stop", "alpha", "gamma").returncode == 0
    calm = "1/1 workers ready: alpha STOPPED, beta 1/1, gamma STOPPED"
    supervisor.wait_for(lambda: notify.has("STATUS", calm), what=calm)
    assert supervisor.proc.poll() is None


def test_watchdog_pings_at_half_the_interval(supervisor, notify):
    supervisor.configure({"alpha": {}})
    supervisor.start(env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "200000"})
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    time.sleep(1.5)
    pings = sum(1 for m in notify.drain() if m.get("WATCHDOG") == "1")
    assert 5 <= pings <= 30


def test_watchdog_meant_for_another_pid_is_ignored(supervisor, notify):
    supervisor.configure({"alpha": {}})
    env = {"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
    supervisor.start(env=env)
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    time.sleep(0.5)
    assert not notify.has("WATCHDOG")


def test_process_titles_are_set_under_systemd_as_without_it(supervisor, notify):
    """NOTIFY_SOCKET comes first in the environment systemd gives: taking it out must not
    cost setproctitle the room it writes the titles in (/proc/PID/cmdline shows them)."""
    supervisor.configure({"alpha": {"workers": 2}})
    supervisor.start(env={"NOTIFY_SOCKET": notify.address})  # first in its environment
    supervisor.wait_for(lambda: notify.has("READY", "1"), what="READY=1")
    titles = {}
    for pid in [supervisor.pid, *(p.pid for p in supervisor.children())]:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            titles[cmdline.read().split(b"\0")[0].decode()] = pid
    assert set(titles) == {
        "mgr-supervisor: master",
        "mgr-supervisor: recorder",
        "mgr-supervisor: alpha worker(0)",
        "mgr-supervisor: alpha worker(1)",
    }
