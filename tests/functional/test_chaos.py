"""Chaos: random SIGKILLs of workers and SIGHUPs to the parent, then an honest account."""

from __future__ import annotations

import random
import signal
import time

import psutil

WANTED = {"alpha": 2, "beta": 2, "gamma": 1}
CHAOS_SECONDS = 8


def test_random_kills_and_reloads_leave_the_right_workers_and_nothing_else(supervisor):
    policy = {"start_secs": 0.2, "restart_backoff_initial": 0.1, "restart_backoff_max": 0.5}
    supervisor.configure(
        {name: {"workers": n, "spawn_child": "true", **policy} for name, n in WANTED.items()}
    )
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 5, what="5 ready")
    rng = random.Random(1234)
    killed: set[int] = set()
    hups = 0
    deadline = time.monotonic() + CHAOS_SECONDS
    while time.monotonic() < deadline:
        assert supervisor.proc.poll() is None, supervisor.log()[-3000:]
        if rng.random() < 0.3:
            supervisor.signal(signal.SIGHUP)
            hups += 1
        else:
            workers = list(supervisor.worker_titles().values())
            if workers:
                victim = rng.choice(workers)
                try:
                    psutil.Process(victim).kill()
                    killed.add(victim)
                except psutil.NoSuchProcess:
                    pass
        time.sleep(rng.uniform(0.05, 0.4))

    def settled() -> bool:
        titles = supervisor.worker_titles()
        wanted = {f"mgr-supervisor: {n} worker({i})" for n, c in WANTED.items() for i in range(c)}
        return set(titles) == wanted and all(
            pid in supervisor.pids_with("post_start_hook") for pid in titles.values()
        )

    supervisor.wait_for(settled, timeout=15, what="5 workers running again")
    running = set(supervisor.worker_titles().values())
    assert len(running) == 5
    assert len(killed) > 10 and hups > 3

    assert supervisor.stop(timeout=20) == 0
    cleaned = set(supervisor.pids_with("cleanup_host"))
    for pid in supervisor.pids_with("init_host"):
        assert pid in cleaned or pid in killed, f"worker {pid} vanished without cleanup_host"
    assert running <= cleaned
    assert supervisor.leftovers() == []
