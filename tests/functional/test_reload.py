"""SIGHUP validates the config first: a broken file changes nothing."""

from __future__ import annotations

import signal
import time


def test_a_broken_config_on_sighup_changes_nothing_and_a_fixed_one_applies(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "label": "first"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    pids = set(supervisor.worker_titles().values())

    supervisor.configure({"alpha": {"workers": "lots", "label": "broken"}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: "reload rejected" in supervisor.log(), what="the rejection")
    time.sleep(0.5)
    assert "[manager:alpha] workers: invalid value 'lots'" in supervisor.log()
    assert supervisor.count("reset") == 0
    assert set(supervisor.worker_titles().values()) == pids

    supervisor.configure({"alpha": {"workers": 2, "label": "fixed"}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 2, what="2 resets")
    assert {w[2] for w in supervisor.events() if w[1] == "reset"} == {"fixed"}
    assert set(supervisor.worker_titles().values()) == pids


def test_sighup_applies_a_new_graceful_shutdown_timeout(supervisor):
    supervisor.configure(
        {"alpha": {"block_in": "cleanup_host"}}, default={"graceful_shutdown_timeout": 60}
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick"), what="a tick")
    supervisor.configure(
        {"alpha": {"block_in": "cleanup_host"}}, default={"graceful_shutdown_timeout": 1}
    )
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 1, what="a reset")
    started = time.monotonic()
    assert supervisor.stop(timeout=15) == 0
    assert time.monotonic() - started < 10
