"""A reload that passed validation never stops what it does not have to, nor the supervisor."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest


def test_a_manager_option_that_changes_type_does_not_stop_the_others(supervisor):
    supervisor.configure({"alpha": {}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    before = supervisor.worker_titles()
    # Valid for RetypedManager's StrOpt; not a float, as EventManager's option was.
    retyped = {"manager": "tests.functional.managers.RetypedManager", "slow_seconds": "a while"}
    supervisor.configure({"alpha": retyped, "beta": {}})
    supervisor.signal(signal.SIGHUP)
    # oslo.config cannot unregister an option: rejected before anything changed, with a reason.
    supervisor.wait_for(lambda: "reload rejected" in supervisor.log(), what="the rejection")
    assert "[manager:alpha] slow_seconds:" in supervisor.log()
    assert "restart the supervisor to apply it" in supervisor.log()
    time.sleep(1.5)
    assert supervisor.proc.poll() is None, "the supervisor stopped on a valid reload"
    assert "internal error" not in supervisor.log()
    assert supervisor.worker_titles() == before
    assert supervisor.count("cleanup_host") == 0, "a rejected reload stopped a worker"
    assert supervisor.count("reset") == 0


@pytest.fixture
def tiny_state_path(supervisor):
    """The supervisor's state_path on a 256 KiB tmpfs, to fill up (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", supervisor.state_path],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield supervisor.state_path
    subprocess.run(["umount", "-l", supervisor.state_path], check=False)


def fill(directory: str) -> None:
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"x" * 4096)
    finally:
        os.close(fd)


def test_a_full_state_path_disk_does_not_stop_a_reload(supervisor, tiny_state_path, tmp_path):
    """A reload writes nothing to disk: the workers mutate their config from the files."""
    database = {"connection": f"sqlite:///{tmp_path}/records.sqlite"}
    supervisor.configure({"alpha": {"workers": 2, "label": "old"}}, database=database)
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="2 ready")
    before = supervisor.worker_titles()
    fill(tiny_state_path)
    supervisor.configure({"alpha": {"workers": 2, "label": "new"}}, database=database)
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 2, what="2 resets")
    assert {w[2] for w in supervisor.events() if w[1] == "reset"} == {"new"}
    assert "reload rejected" not in supervisor.log()
    assert supervisor.worker_titles() == before
    assert supervisor.stop() == 0
