"""The parent holds no database code (docs/architecture.md, "Service records"): not at
start, and not after what runs in it later: a Guru Meditation Report, a reload, a scrape."""

from __future__ import annotations

import signal

import psutil

from tests.functional.test_http import answers, scrape
from tests.ports import free_port


def mapped(pid: int, name: str) -> bool:
    """Whether a file of package `name` (its compiled extensions) is mapped in `pid`."""
    return any(f"/{name}/" in m.path for m in psutil.Process(pid).memory_maps(grouped=True))


def test_the_parent_loads_no_sqlalchemy_after_a_report_a_reload_and_a_scrape(supervisor):
    port = free_port()
    listen = {"http_listen": f"127.0.0.1:{port}"}
    supervisor.configure({"alpha": {}}, supervisor=listen)
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    supervisor.wait_for(lambda: answers(port), what="the HTTP endpoint")
    recorder = supervisor.recorder()
    # What the check sees: the recorder, which runs SQLAlchemy, maps its extensions.
    assert recorder is not None and mapped(recorder.pid, "sqlalchemy")
    assert not mapped(supervisor.pid, "sqlalchemy")

    supervisor.signal(signal.SIGUSR2)
    head = f"mgr-supervisor pid {supervisor.pid}, up "
    supervisor.wait_for(lambda: head in supervisor.log(), what="the parent's report")
    supervisor.configure({"alpha": {}, "beta": {}}, supervisor=listen)
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: "reload applied" in supervisor.log(), what="the reload")
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="beta ready")
    assert any(name.startswith("mgr_supervisor_") for name in scrape(port))

    assert not mapped(supervisor.pid, "sqlalchemy")
    assert not mapped(supervisor.pid, "psycopg")
    assert supervisor.stop() == 0
