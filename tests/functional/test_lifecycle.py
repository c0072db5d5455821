"""The worker lifecycle (docs/architecture.md), observed through what real workers record."""

from __future__ import annotations

import signal
import time

import psutil

STARTUP = ["init_host", "pre_start_hook", "post_start_hook", "tick"]


def hooks_by_pid(supervisor) -> dict[int, list[str]]:
    hooks: dict[int, list[str]] = {}
    for words in supervisor.events():
        if words[1] not in ("child", "environ"):
            hooks.setdefault(int(words[0]), []).append(words[1])
    return hooks


def test_every_worker_runs_the_hooks_in_order(supervisor):
    supervisor.configure({"alpha": {"workers": 2}, "beta": {"workers": 1}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 3, what="3 workers ticking")

    hooks = hooks_by_pid(supervisor)
    assert len(hooks) == 3
    for pid, calls in hooks.items():
        assert calls[:4] == STARTUP, (pid, calls)
    names = sorted(w[2] for w in supervisor.events() if w[1] == "init_host")
    assert names == ["alpha", "alpha", "beta"]
    titles = supervisor.worker_titles()
    assert sorted(titles) == [
        "mgr-supervisor: alpha worker(0)",
        "mgr-supervisor: alpha worker(1)",
        "mgr-supervisor: beta worker(0)",
    ]
    assert set(titles.values()) == set(hooks)
    assert " ".join(psutil.Process(supervisor.pid).cmdline()).strip() == "mgr-supervisor: master"


def test_host_defaults_to_config(supervisor):
    supervisor.configure({"alpha": {}}, default={"host": "node-7"})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("init_host"), what="init_host")
    (init_host,) = [w for w in supervisor.events() if w[1] == "init_host"]
    assert init_host[2:] == ["alpha", "node-7"]


def test_periodic_tasks_tick(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 3, timeout=10, what="3 ticks")
    assert len(set(supervisor.pids_with("tick"))) == 1


def test_sighup_resets_each_worker_in_place_and_spares_its_children(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "spawn_child": "true", "label": "old"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    supervisor.wait_for(lambda: supervisor.count("child") == 2, what="2 children")
    pids_before = set(supervisor.worker_titles().values())
    children = [int(w[2]) for w in supervisor.events() if w[1] == "child"]

    supervisor.configure({"alpha": {"workers": 2, "spawn_child": "true", "label": "new"}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 2, what="2 resets")
    time.sleep(0.5)

    resets = [w for w in supervisor.events() if w[1] == "reset"]
    assert sorted(int(w[0]) for w in resets) == sorted(pids_before)
    assert {w[2] for w in resets} == {"new"}, "reset() must see the new config"
    assert set(supervisor.worker_titles().values()) == pids_before
    for child in children:
        assert psutil.Process(child).status() != psutil.STATUS_ZOMBIE
    assert supervisor.count("init_host") == 2


def test_sigterm_cleans_up_every_worker_once_and_leaves_nothing(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "spawn_child": "true"}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 3, what="3 workers ticking")
    supervisor.wait_for(lambda: supervisor.count("child") == 2, what="2 children")
    workers = set(supervisor.worker_titles().values())

    assert supervisor.stop() == 0
    assert sorted(supervisor.pids_with("cleanup_host")) == sorted(workers)
    assert supervisor.leftovers() == []
    # One SIGTERM each: the parent-death signal must not fire while the parent lives.
    assert supervisor.log().count("SIGTERM received") == 3


def test_sigint_to_a_worker_is_ignored(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick"), what="a tick")
    (worker,) = supervisor.worker_titles().values()
    psutil.Process(worker).send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert psutil.Process(worker).is_running()
    assert supervisor.count("cleanup_host") == 0
    assert list(supervisor.worker_titles().values()) == [worker]


def test_a_killed_worker_is_replaced_with_the_same_id_and_a_full_lifecycle(supervisor):
    supervisor.configure({"alpha": {"workers": 2}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    titles = supervisor.worker_titles()
    victim = titles["mgr-supervisor: alpha worker(1)"]

    psutil.Process(victim).kill()
    killed_at = time.monotonic()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 3, what="replacement")
    assert time.monotonic() - killed_at < 10

    new_titles = supervisor.worker_titles()
    replacement = new_titles["mgr-supervisor: alpha worker(1)"]
    assert replacement != victim
    assert (
        new_titles["mgr-supervisor: alpha worker(0)"] == titles["mgr-supervisor: alpha worker(0)"]
    )
    supervisor.wait_for(lambda: replacement in supervisor.pids_with("tick"), what="its tick")
    assert hooks_by_pid(supervisor)[replacement][:4] == STARTUP
    assert victim not in supervisor.pids_with("cleanup_host")


def test_sighup_during_reset_is_not_lost(supervisor):
    supervisor.configure({"alpha": {"slow_in": "reset", "slow_seconds": 1.5}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick"), what="a tick")
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 1, what="first reset under way")
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset-done") == 2, what="second reset")
    time.sleep(0.3)
    assert supervisor.count("reset") == 2


def test_a_storm_of_sighups_keeps_the_same_pids_and_resets_every_worker(supervisor):
    supervisor.configure({"alpha": {"workers": 2}, "beta": {"workers": 2}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 4, what="4 ready")
    pids = set(supervisor.worker_titles().values())
    for _ in range(20):
        supervisor.signal(signal.SIGHUP)
        time.sleep(0.01)
    supervisor.wait_for(lambda: set(supervisor.pids_with("reset")) == pids, what="4 resets")
    time.sleep(0.5)
    assert set(supervisor.worker_titles().values()) == pids
    assert supervisor.count("init_host") == 4
    assert supervisor.proc.poll() is None


def test_a_manager_written_as_novas_runs_under_its_section_name(supervisor):
    """nova's `__init__(*args, **kwargs)` passing its own service_name: built as nova's
    Service builds it, on the options of its `[manager:NAME]`, which `manager_name` names."""
    manager = "tests.functional.managers.NovaStyleManager"
    supervisor.configure({"cells": {"manager": manager, "label": "from-cells"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 1, what="a tick")
    calls = hooks_by_pid(supervisor)
    assert [c[:5] for c in calls.values()] == [["names", *STARTUP]]
    (names,) = [w[2:] for w in supervisor.events() if w[1] == "names"]
    assert names == ["compute", "cells", "from-cells"]
    assert supervisor.worker_titles() == {
        "mgr-supervisor: cells worker(0)": supervisor.pids_with("tick")[0]
    }
