"""`start_retries = -1` never gives up; FATAL shows in `status`'s exit status, a manager
stopped on request does not."""

from __future__ import annotations

import json
import re
import time

from tests.functional.conftest import ctl
from tests.functional.test_systemd import FAST_FATAL

FOREVER = {
    "fail_in": "init_host",
    "start_retries": -1,
    "restart_backoff_initial": 0.1,
    "restart_backoff_max": 0.4,
}


def starts(supervisor, name: str) -> int:
    return len([w for w in supervisor.events() if w[1] == "init_host" and w[2] == name])


def test_start_retries_minus_one_restarts_forever_with_a_capped_backoff(supervisor):
    # Alone: were it ever FATAL, the supervisor would exit ("every manager is FATAL").
    supervisor.configure({"alpha": FOREVER})
    supervisor.start()
    started = time.monotonic()
    # 15 starts: 2.5 times what the default start_retries (5) allows. Uncapped, doubling
    # from 0.1 s, the 15th would come after 0.1 * 2**14 s, over 27 minutes.
    supervisor.wait_for(lambda: starts(supervisor, "alpha") >= 15, timeout=40, what="15 starts")
    assert time.monotonic() - started < 40
    result = ctl(supervisor, "status", "--json")
    assert result.returncode == 1, "a manager in a crash loop is not fine"
    (alpha,) = json.loads(result.stdout)["managers"]
    assert alpha["state"] in ("STARTING", "BACKOFF")
    assert alpha["restarts"] >= 14
    log = supervisor.log()
    assert "FATAL" not in log.replace("never FATAL", "")
    assert "failed start 15 (never FATAL)" in log
    delays = [float(d) for d in re.findall(r"next start in ([0-9.]+)s", log)]
    assert delays[:3] == [0.1, 0.2, 0.4] and max(delays) == 0.4, delays
    assert supervisor.proc.poll() is None


def test_status_exits_1_while_a_manager_is_fatal_and_names_filter_it(supervisor):
    supervisor.configure({"alpha": FAST_FATAL, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: "alpha is FATAL" in supervisor.log(), what="FATAL")
    supervisor.wait_for(
        lambda: ctl(supervisor, "status", "beta").returncode == 0, what="beta RUNNING"
    )
    assert ctl(supervisor, "status").returncode == 1
    assert ctl(supervisor, "status", "alpha").returncode == 1
    assert ctl(supervisor, "status", "alpha", "beta").returncode == 1

    assert ctl(supervisor, "stop", "alpha").returncode == 0
    stopped = json.loads(ctl(supervisor, "status", "--json", "alpha").stdout)["managers"][0]
    assert stopped["state"] == "STOPPED", "stop forgives FATAL: no failure to report"
    assert ctl(supervisor, "status").returncode == 0
    assert ctl(supervisor, "start", "alpha").returncode == 0
    # A fresh count: start_retries + 1 = 2 more starts, then FATAL once more.
    supervisor.wait_for(
        lambda: supervisor.log().count("alpha is FATAL") == 2, what="FATAL after a fresh count"
    )
    assert starts(supervisor, "alpha") == 4
    assert ctl(supervisor, "status", "alpha").returncode == 1
