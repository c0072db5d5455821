"""Processes that are not workers: a manager's children get their grace period even when
cleanup_host fails, and the parent's own children are never reaped behind its back."""

from __future__ import annotations

import signal
import time

from tests.functional.managers import EVENT_FILE_ENV
from tests.functional.test_signals_and_fds import proc_status

TRAPPING_CHILD = """\
trap 'echo term >> {log}; exit 0' TERM
echo started >> {log}
while :; do sleep 0.1; done
"""


def test_a_failing_cleanup_host_still_gives_children_their_grace_period(supervisor, tmp_path):
    log = tmp_path / "child-events"
    script = tmp_path / "child.sh"
    script.write_text(TRAPPING_CHILD.format(log=log))
    supervisor.configure(
        {
            "alpha": {
                "spawn_child": "true",
                "child_command": f"sh {script}",
                "fail_in": "cleanup_host",
            }
        }
    )
    supervisor.start()
    supervisor.wait_for(lambda: log.exists() and "started" in log.read_text(), what="the child")
    supervisor.signal(signal.SIGTERM)
    supervisor.wait_exit()
    assert supervisor.count("cleanup_host") == 1
    assert log.read_text().split() == ["started", "term"], "the child got no SIGTERM first"


def test_the_parent_does_not_reap_a_child_of_its_own(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start(env={EVENT_FILE_ENV: str(supervisor.event_file)})
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    supervisor.configure({"alpha": {"manager": "tests.functional.popen_manager.PopenManager"}})
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("import-child"), what="the import's child")
    ((importer, child),) = [
        (int(w[0]), int(w[2])) for w in supervisor.events() if w[1] == "import-child"
    ]
    assert importer == supervisor.pid
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="the new alpha")
    time.sleep(1)
    try:
        status = proc_status(child)
    except FileNotFoundError:
        raise AssertionError("the supervisor reaped a child that is not a worker") from None
    assert status["State"].startswith("Z")
    assert int(status["PPid"]) == supervisor.pid
