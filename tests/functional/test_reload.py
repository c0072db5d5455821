"""SIGHUP validates the config first: a broken file changes nothing."""

from __future__ import annotations

import os
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


def titles(supervisor) -> dict[str, int]:
    return supervisor.worker_titles()


def test_reload_adds_a_manager_and_leaves_the_others_in_place(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="alpha ready")
    (alpha,) = titles(supervisor).values()
    supervisor.configure({"alpha": {}, "beta": {"workers": 2}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 3, what="beta ready")
    supervisor.wait_for(lambda: supervisor.count("reset") == 1, what="alpha reset")
    assert supervisor.pids_with("reset") == [alpha]
    assert sorted(titles(supervisor)) == [
        "mgr-supervisor: alpha worker(0)",
        "mgr-supervisor: beta worker(0)",
        "mgr-supervisor: beta worker(1)",
    ]


def test_reload_removes_a_manager_with_cleanup_and_no_restart(supervisor):
    supervisor.configure({"alpha": {}, "beta": {"workers": 2}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 3, what="3 ready")
    beta = {p for t, p in titles(supervisor).items() if "beta" in t}
    supervisor.configure({"alpha": {}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: set(supervisor.pids_with("cleanup_host")) == beta, what="cleanup")
    time.sleep(1.0)
    assert list(titles(supervisor)) == ["mgr-supervisor: alpha worker(0)"]
    assert supervisor.count("init_host") == 3
    assert supervisor.count("reset") == 1


def test_reload_grows_and_shrinks_a_worker_count_and_stopped_workers_stay_stopped(supervisor):
    supervisor.configure({"alpha": {"workers": 2}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    first = titles(supervisor)

    supervisor.configure({"alpha": {"workers": 4}})
    supervisor.signal(signal.SIGHUP)
    four = {f"mgr-supervisor: alpha worker({i})" for i in range(4)}
    supervisor.wait_for(lambda: set(titles(supervisor)) == four, what="4 workers")
    grown = titles(supervisor)
    for title, pid in first.items():
        assert grown[title] == pid, "existing workers keep running"
    supervisor.wait_for(lambda: supervisor.count("reset") == 2, what="2 resets")
    # cleanup_host() is owed once init_host() returned: wait for the 2 new ones to be up.
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 4, what="4 ready")

    supervisor.configure({"alpha": {"workers": 1}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(
        lambda: list(titles(supervisor)) == ["mgr-supervisor: alpha worker(0)"], what="1 worker"
    )
    time.sleep(1.5)
    assert list(titles(supervisor)) == ["mgr-supervisor: alpha worker(0)"]
    assert (
        titles(supervisor)["mgr-supervisor: alpha worker(0)"]
        == first["mgr-supervisor: alpha worker(0)"]
    )
    stopped = {grown[f"mgr-supervisor: alpha worker({i})"] for i in (1, 2, 3)}
    assert stopped <= set(supervisor.pids_with("cleanup_host"))
    assert supervisor.count("init_host") == 4, "a stopped worker must not be respawned"


def test_reload_with_a_new_manager_path_restarts_that_manager_only(supervisor):
    supervisor.configure({"alpha": {}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    before = titles(supervisor)
    supervisor.configure(
        {"alpha": {"manager": "workers.demo.DemoManager", "greeting": "swapped"}, "beta": {}}
    )
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(
        lambda: "greeting is now" in supervisor.log() or "alpha: swapped" in supervisor.log(),
        what="the demo manager in alpha",
    )
    after = titles(supervisor)
    assert after["mgr-supervisor: alpha worker(0)"] != before["mgr-supervisor: alpha worker(0)"]
    assert after["mgr-supervisor: beta worker(0)"] == before["mgr-supervisor: beta worker(0)"]
    assert before["mgr-supervisor: alpha worker(0)"] in supervisor.pids_with("cleanup_host")
    assert supervisor.pids_with("reset") == [before["mgr-supervisor: beta worker(0)"]]


def test_reload_clears_fatal(supervisor):
    fast = {"start_retries": 0, "restart_backoff_initial": 0.1}
    supervisor.configure({"alpha": {"fail_in": "init_host", **fast}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: "manager alpha is FATAL" in supervisor.log(), what="FATAL")
    supervisor.configure({"alpha": {**fast}, "beta": {}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="alpha running")


def test_a_burst_of_sighups_ends_on_the_last_config(supervisor):
    supervisor.configure({"alpha": {"workers": 2}, "beta": {"workers": 2}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 4, what="4 ready")
    pids = set(titles(supervisor).values())
    for i in range(20):
        label = f"v{i}"
        supervisor.configure(
            {"alpha": {"workers": 2, "label": label}, "beta": {"workers": 2, "label": label}}
        )
        supervisor.signal(signal.SIGHUP)
        time.sleep(0.01)

    def all_on_last() -> bool:
        last = {}
        for words in supervisor.events():
            if words[1] == "reset":
                last[int(words[0])] = words[2]
        return set(last) == pids and set(last.values()) == {"v19"}

    supervisor.wait_for(all_on_last, what="every worker reset with the last config")
    assert set(titles(supervisor).values()) == pids
    assert supervisor.count("init_host") == 4


def test_sigterm_in_the_middle_of_a_reload_stops_cleanly(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "slow_in": "reset", "slow_seconds": 1}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    supervisor.configure({"alpha": {"workers": 3, "slow_in": "reset", "slow_seconds": 1}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") >= 1, what="a reset under way")
    assert supervisor.stop() == 0
    assert supervisor.count("cleanup_host") == supervisor.count("init_host")


def test_a_sighup_during_startup_is_not_lost(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "slow_in": "init_host", "slow_seconds": 1}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("init_host") >= 1, what="startup under way")
    supervisor.configure(
        {"alpha": {"workers": 2, "slow_in": "init_host", "slow_seconds": 1, "label": "early"}}
    )
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 2, what="2 resets after startup")
    assert {w[2] for w in supervisor.events() if w[1] == "reset"} == {"early"}


def test_check_config_on_good_and_bad_files(tmp_path):
    from tests.functional.conftest import render_config
    from tests.functional.test_bad_config import run_supervisor

    good = tmp_path / "good.conf"
    good.write_text(render_config(tmp_path / "events", {"alpha": {"workers": 3}}))
    result = run_supervisor(tmp_path, "--config-file", str(good), "--check-config")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mgr-supervisor: config OK: 1 manager(s): alpha (3)"
    bad = tmp_path / "bad.conf"
    bad.write_text(render_config(tmp_path / "events", {"alpha": {"workers": "x"}}))
    result = run_supervisor(tmp_path, "--config-file", str(bad), "--check-config")
    assert result.returncode == 78
    assert "[manager:alpha] workers: invalid value 'x'" in result.stderr
    assert not (tmp_path / "events").exists()


def test_sighup_applies_a_periodic_spacing_in_place(supervisor):
    supervisor.configure({"alpha": {"tick_spacing": 60}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") == 1, what="the first tick")
    time.sleep(1.5)
    assert supervisor.count("tick") == 1
    supervisor.configure({"alpha": {"tick_spacing": 0.2}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("tick") >= 4, what="ticks every 0.2 s")
    assert len(set(supervisor.pids_with("tick"))) == 1


def test_removing_a_fatal_manager_forgets_it(supervisor):
    fast = {"start_retries": 0, "restart_backoff_initial": 0.1, "fail_in": "init_host"}
    supervisor.configure({"alpha": fast, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: "manager alpha is FATAL" in supervisor.log(), what="FATAL")
    supervisor.configure({"beta": {}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 1, what="beta reset")
    from tests.functional.conftest import ctl

    supervisor.wait_for(lambda: ctl(supervisor, "status").returncode == 0, what="all RUNNING")
    assert "alpha" not in ctl(supervisor, "status").stdout


def test_a_group_only_a_manager_registers_is_mutated_and_its_hook_called(supervisor):
    """oslo.config's mutation reaches every group, and a manager's mutate hook runs."""
    driver = {"manager": "tests.functional.managers.DriverManager", "workers": 2}
    supervisor.configure({"alpha": driver}, extra={"event_driver": {"mode": "a", "size": 1}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    supervisor.configure({"alpha": driver}, extra={"event_driver": {"mode": "b", "size": 2}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 2, what="2 resets")
    assert [w[2:] for w in supervisor.events() if w[1] == "driver"] == [["b", "1"]] * 2
    assert [w[2] for w in supervisor.events() if w[1] == "mutated"] == ["event_driver.mode"] * 2
    needs_restart = "[event_driver] size changed, but it needs a restart of the supervisor"
    assert supervisor.log().count(needs_restart) == 1  # from worker 0 only

    supervisor.signal(signal.SIGHUP)  # the same files: reset, but nothing to mutate
    supervisor.wait_for(lambda: supervisor.count("reset") == 4, what="2 more resets")
    assert supervisor.count("mutated") == 2


def test_an_immutable_option_is_applied_nowhere_and_warned_about_once(supervisor):
    """No manager runs with two hosts: a respawned worker keeps the one in force too."""
    supervisor.configure({"alpha": {"workers": 2, "fixed": "x"}}, default={"host": "node-1"})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    supervisor.configure(
        {"alpha": {"workers": 2, "fixed": "y", "label": "new"}}, default={"host": "node-2"}
    )
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 2, what="2 resets")
    assert {w[2] for w in supervisor.events() if w[1] == "reset"} == {"new"}  # mutable: yes
    log = supervisor.log()
    for option in ("[DEFAULT] host", "[manager:alpha] fixed"):
        line = f"{supervisor.config_file}: {option} changed, but it needs a restart"
        assert log.count(line) == 1, log[-3000:]
    victim = supervisor.worker_titles()["mgr-supervisor: alpha worker(1)"]
    os.kill(victim, signal.SIGKILL)
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 3, what="the respawn")
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 4, what="2 more resets")
    assert {tuple(w[2:]) for w in supervisor.events() if w[1] == "reset-values"} == {
        ("x", "node-1")
    }
    assert {w[3] for w in supervisor.events() if w[1] == "init_host"} == {"node-1"}


def test_a_file_edited_after_validation_is_not_applied_by_a_worker(supervisor):
    """A worker busy when the reload comes reads the files later: if they are no longer
    the ones the parent validated, it keeps its config and says so."""
    supervisor.configure({"alpha": {"slow_in": "tick", "slow_seconds": 2, "label": "old"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 1, what="a slow tick under way")
    supervisor.configure({"alpha": {"slow_in": "tick", "slow_seconds": 2, "label": "validated"}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: "reload applied" in supervisor.log(), what="the reload applied")
    supervisor.configure({"alpha": {"slow_in": "tick", "slow_seconds": 2, "label": "later"}})
    supervisor.wait_for(lambda: supervisor.count("reset") == 1, what="the reset")
    (label,) = [w[2] for w in supervisor.events() if w[1] == "reset"]
    if label == "old":  # the tick outlasted the edit (the usual case)
        assert "changed after the supervisor validated them" in supervisor.log()
    else:  # the machine was slow enough that the worker read before the edit
        assert label == "validated"
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 2, what="the second reset")
    assert [w[2] for w in supervisor.events() if w[1] == "reset"][-1] == "later"
