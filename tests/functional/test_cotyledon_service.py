"""A plain cotyledon.Service subclass runs as a manager, unchanged: run, reload, terminate."""

from __future__ import annotations

import signal

from tests.functional.conftest import ctl
from tests.functional.managers import EVENT_FILE_ENV

SERVICE = "tests.functional.managers.EventService"


def by_event(supervisor, event: str) -> dict[int, str]:
    return {int(w[0]): w[2] for w in supervisor.events() if w[1] == event}


def test_a_cotyledon_service_runs_reloads_in_place_and_terminates(supervisor):
    supervisor.configure({"svc": {"workers": 2, "manager": SERVICE}})
    supervisor.start(env={EVENT_FILE_ENV: str(supervisor.event_file)})
    supervisor.wait_for(lambda: len(by_event(supervisor, "run")) == 2, what="2 services running")
    supervisor.wait_for(lambda: ctl(supervisor, "status").returncode == 0, what="RUNNING")
    running = by_event(supervisor, "run")
    assert sorted(running.values()) == ["0", "1"]
    titles = supervisor.worker_titles()
    assert set(titles.values()) == set(running)
    assert sorted(titles) == ["mgr-supervisor: svc worker(0)", "mgr-supervisor: svc worker(1)"]

    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: len(by_event(supervisor, "reload")) == 2, what="2 reloads")
    assert by_event(supervisor, "reload") == running
    assert supervisor.worker_titles() == titles, "a reload must not replace the workers"
    assert supervisor.count("terminate") == 0

    assert supervisor.stop() == 0
    assert by_event(supervisor, "terminate") == running
    assert len(by_event(supervisor, "run")) == 2, "no worker was restarted"
