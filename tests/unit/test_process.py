"""Process helpers that need no supervisor: finding children and reaping only orphans."""

from __future__ import annotations

import os
import subprocess

from supervisor.process import children, reap_orphans


def test_children_sees_a_child_and_its_absence():
    assert children() == []
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert children() == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert children() == []


def test_reap_orphans_takes_other_sessions_only():
    """A child of our own session (a subprocess someone waits for) is never reaped."""
    own = subprocess.Popen(["true"])
    orphan = subprocess.Popen(["true"], start_new_session=True)
    os.waitid(os.P_PID, own.pid, os.WEXITED | os.WNOWAIT)
    os.waitid(os.P_PID, orphan.pid, os.WEXITED | os.WNOWAIT)
    assert reap_orphans(os.getsid(0)) == [orphan.pid]
    assert own.wait(timeout=5) == 0, "its exit status must still be there for its owner"


def test_reap_orphans_never_takes_a_worker():
    """A worker (its own session) that exits between two reaps keeps its status for us."""
    worker = subprocess.Popen(["sh", "-c", "exit 7"], start_new_session=True)
    os.waitid(os.P_PID, worker.pid, os.WEXITED | os.WNOWAIT)
    assert reap_orphans(os.getsid(0), {worker.pid}) == []
    assert worker.wait(timeout=5) == 7
