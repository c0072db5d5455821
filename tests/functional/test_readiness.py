"""Readiness drives the restart policy, the manager state, status and READY=1."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.functional.conftest import ctl
from tests.functional.test_systemd import NotifyListener

FAST_BACKOFF = {"restart_backoff_initial": 0.1, "restart_backoff_max": 0.4}


@pytest.fixture
def listener(tmp_path):
    notify = NotifyListener(str(tmp_path / "notify.sock"))
    yield notify
    notify.close()


def alpha_starts(supervisor) -> int:
    return len([w for w in supervisor.events() if w[1] == "init_host" and w[2] == "alpha"])


def test_a_worker_stuck_in_init_host_keeps_its_manager_starting(supervisor):
    supervisor.configure(
        {"alpha": {"slow_in": "init_host", "slow_seconds": 5, "start_secs": 1}, "beta": {}}
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("init_host") == 2, what="2 init_host")
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="beta ready")
    time.sleep(2)  # alpha's worker is now well past start_secs, still in init_host
    assert supervisor.count("init_host-done") == 0
    result = ctl(supervisor, "status", "--json")
    assert result.returncode == 1, "status said every manager is RUNNING"
    states = {m["name"]: m["state"] for m in json.loads(result.stdout)["managers"]}
    assert states == {"alpha": "STARTING", "beta": "RUNNING"}


def test_a_worker_that_fails_before_ready_but_after_start_secs_is_a_failed_start(supervisor):
    alpha = {
        "slow_in": "init_host",
        "slow_seconds": 1.5,
        "fail_in": "init_host",
        "start_secs": 1,
        "start_retries": 2,
        **FAST_BACKOFF,
    }
    supervisor.configure({"alpha": alpha, "beta": {}})
    supervisor.start()
    supervisor.wait_for(
        lambda: "manager alpha is FATAL" in supervisor.log(), timeout=12, what="alpha FATAL"
    )
    time.sleep(1)
    assert alpha_starts(supervisor) == 3
    assert supervisor.count("init_host-done") == 3
    assert supervisor.proc.poll() is None


def test_start_secs_0_is_no_hot_loop(supervisor):
    alpha = {"fail_in": "init_host", "start_secs": 0, "start_retries": 2, **FAST_BACKOFF}
    supervisor.configure({"alpha": alpha, "beta": {}})
    supervisor.start()
    supervisor.wait_for(
        lambda: "manager alpha is FATAL" in supervisor.log() or alpha_starts(supervisor) > 20,
        what="alpha FATAL",
    )
    time.sleep(1)
    assert alpha_starts(supervisor) == 3
    assert supervisor.proc.poll() is None


def test_periodic_fuzzy_delay_longer_than_heartbeat_timeout_is_no_hang(supervisor):
    supervisor.configure({"alpha": {"periodic_fuzzy_delay": 60, "heartbeat_timeout": 1}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    time.sleep(3)
    assert supervisor.count("init_host") == 1, "the worker was restarted"
    assert "no heartbeat" not in supervisor.log()


def test_ready_once_and_only_when_every_worker_is_ready_despite_a_sighup(supervisor, listener):
    notify = listener
    supervisor.configure({"alpha": {"workers": 2, "slow_in": "init_host", "slow_seconds": 1.5}})
    supervisor.start(env={"NOTIFY_SOCKET": notify.address})
    supervisor.wait_for(lambda: supervisor.count("init_host") == 2, what="2 init_host")
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    assert supervisor.count("post_start_hook") == 2, "READY=1 before every worker was ready"
    time.sleep(1)
    messages = notify.drain()
    first_ready = next(i for i, m in enumerate(messages) if "READY" in m)
    assert any("RELOADING" in m for m in messages[:first_ready]), messages
    assert sum(1 for m in messages if "READY" in m) == 1, messages
