"""Process helpers that need no supervisor: child detection and orphan reaping."""

from __future__ import annotations

import os
import subprocess

from supervisor.process import has_children, reap_orphans


def test_has_children_sees_a_child_and_its_absence():
    assert not has_children()
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert has_children()
    finally:
        child.kill()
        child.wait()
    assert not has_children()


def test_reap_orphans_leaves_the_children_it_is_told_to_leave():
    kept = os.fork()
    if kept == 0:
        os._exit(3)
    other = os.fork()
    if other == 0:
        os._exit(4)
    os.waitid(os.P_PID, kept, os.WEXITED | os.WNOWAIT)
    os.waitid(os.P_PID, other, os.WEXITED | os.WNOWAIT)
    first = reap_orphans({kept})
    assert first in ([], [other]), "it stops at a worker's zombie, whichever comes first"
    _, status = os.waitpid(kept, 0)
    assert os.waitstatus_to_exitcode(status) == 3, "a worker's status must not be stolen"
    assert first + reap_orphans(set()) == [other]
