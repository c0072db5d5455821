"""`mgr-supervisorctl restart NAME` rolls: each new worker is ready before the next old one
stops, so the manager is never down; `--all-at-once` replaces them together."""

from __future__ import annotations

from tests.functional.conftest import ctl

SLOW_READY = {"workers": 3, "slow_in": "post_start_hook", "slow_seconds": 0.5}


def timeline(supervisor, old: set[int]) -> list[tuple[str, int]]:
    """("stop", pid) when an old worker began cleanup_host, ("ready", pid) when a new worker
    returned from post_start_hook, in the order the event file has them."""
    events = []
    for words in supervisor.events():
        pid = int(words[0])
        if words[1] == "cleanup_host" and pid in old:
            events.append(("stop", pid))
        elif words[1] == "post_start_hook-done" and pid not in old:
            events.append(("ready", pid))
    return events


def restart(supervisor, *args: str) -> tuple[set[int], list[tuple[str, int]]]:
    supervisor.configure({"alpha": SLOW_READY, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook-done") == 3, what="3 ready")
    old = {pid for title, pid in supervisor.worker_titles().items() if "alpha" in title}
    beta = supervisor.worker_titles()["mgr-supervisor: beta worker(0)"]
    result = ctl(supervisor, "restart", "alpha", *args)
    assert result.returncode == 0, result.stderr
    supervisor.wait_for(lambda: len(timeline(supervisor, old)) == 6, what="3 stops, 3 readies")
    assert supervisor.worker_titles()["mgr-supervisor: beta worker(0)"] == beta
    assert supervisor.count("reset") == 0
    return old, timeline(supervisor, old)


def test_restart_replaces_one_worker_at_a_time(supervisor):
    old, events = restart(supervisor)
    kinds = [kind for kind, _ in events]
    assert kinds == ["stop", "ready", "stop", "ready", "stop", "ready"], events
    assert {pid for kind, pid in events if kind == "stop"} == old


def test_restart_all_at_once_stops_every_old_worker_first(supervisor):
    old, events = restart(supervisor, "--all-at-once")
    kinds = [kind for kind, _ in events]
    assert kinds == ["stop", "stop", "stop", "ready", "ready", "ready"], events
    assert {pid for kind, pid in events if kind == "stop"} == old
