"""A manager module whose import runs a subprocess in the parent and keeps it unwaited.

Imported by the parent when a reload switches a manager to it: the parent's own child, not
a worker nor an orphan, which the supervisor must leave for its owner to reap. The child's
pid goes to the event file named by $MGR_TEST_EVENT_FILE as `<parent pid> import-child PID`.
"""

from __future__ import annotations

import subprocess

from tests.functional.managers import EventManager, record_event

CHILD = subprocess.Popen(["true"])
record_event("import-child", str(CHILD.pid))


class PopenManager(EventManager):
    """An EventManager; only importing its module matters."""
