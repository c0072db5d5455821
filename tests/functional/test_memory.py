"""Steady-state memory: a full collection in a worker must not copy the parent's heap."""

from __future__ import annotations

import signal
import time

import psutil


def test_a_full_collection_in_a_worker_leaves_its_memory_near_the_fresh_figure(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "label": "fresh"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick") >= 2, what="2 workers ticking")
    time.sleep(1)
    workers = [psutil.Process(pid) for pid in supervisor.worker_titles().values()]
    fresh = {w.pid: w.memory_full_info().uss for w in workers}

    supervisor.configure({"alpha": {"workers": 2, "label": "collect"}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("collected") == 2, what="2 full collections")
    after = {w.pid: w.memory_full_info().uss for w in workers}
    for pid, uss in after.items():
        # Without a frozen heap a collection copies the whole parent heap: about 3x here.
        assert uss < 2 * fresh[pid], f"worker {pid}: USS {fresh[pid] >> 10} -> {uss >> 10} KiB"
