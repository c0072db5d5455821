"""A secret option's value is never logged, nor written to a file."""

from __future__ import annotations

import os
import signal
import stat
import time

OLD_SECRET = "hunter2-old-s3cr3t"
NEW_SECRET = "hunter2-new-s3cr3t"


def test_a_secret_changed_on_sighup_is_never_logged(supervisor):
    supervisor.configure({"alpha": {"workers": 2, "secret": OLD_SECRET, "label": "before"}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    supervisor.configure({"alpha": {"workers": 2, "secret": NEW_SECRET, "label": "after"}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 2, what="2 resets")
    assert {w[2] for w in supervisor.events() if w[1] == "reset"} == {"after"}
    time.sleep(0.5)  # whatever the parent and workers log about the reload
    log = supervisor.log()
    assert "label" in log or "reload" in log, "the reload was not logged at all"
    assert OLD_SECRET not in log and NEW_SECRET not in log, log[-4000:]
    for name in os.listdir(supervisor.state_path):
        path = os.path.join(supervisor.state_path, name)
        if stat.S_ISREG(os.lstat(path).st_mode) and not name.endswith(".sqlite"):
            content = open(path, "rb").read()
            assert OLD_SECRET.encode() not in content and NEW_SECRET.encode() not in content
    assert supervisor.stop() == 0
    assert OLD_SECRET not in supervisor.log() and NEW_SECRET not in supervisor.log()
