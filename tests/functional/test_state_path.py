"""state_path is checked before it is trusted, and state files are private and never follow
a planted symlink."""

from __future__ import annotations

import os
import signal
import stat

import pytest


def exit_or_start(supervisor) -> int | None:
    """Wait until the supervisor exits or a worker starts; its exit status, or None."""
    supervisor.wait_for(
        lambda: supervisor.proc.poll() is not None or supervisor.count("init_host"),
        what="an exit or a worker",
        parent_alive=False,
    )
    if supervisor.proc.poll() is None:
        return None
    return supervisor.proc.returncode


def assert_refused(supervisor) -> None:
    status = exit_or_start(supervisor)
    assert status == 78, f"exit status {status}\nlog:\n{supervisor.log()}"
    lines = supervisor.log().strip().splitlines()
    assert len(lines) == 1 and "state_path" in lines[0], lines
    assert supervisor.count("init_host") == 0
    assert not os.path.exists(os.path.join(supervisor.state_path, "control.sock"))


def test_a_state_path_writable_by_others_is_refused(supervisor):
    supervisor.configure({"alpha": {}})
    os.chmod(supervisor.state_path, 0o777)
    supervisor.start()
    assert_refused(supervisor)


def test_a_state_path_writable_by_the_group_is_refused(supervisor):
    supervisor.configure({"alpha": {}})
    os.chmod(supervisor.state_path, 0o770)
    supervisor.start()
    assert_refused(supervisor)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_a_state_path_owned_by_another_user_is_refused(supervisor):
    supervisor.configure({"alpha": {}})
    os.chmod(supervisor.state_path, 0o700)
    os.chown(supervisor.state_path, 65534, 65534)
    supervisor.start()
    assert_refused(supervisor)


def test_a_planted_symlink_is_not_followed(supervisor, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(supervisor.state_path, 0o700)
    for name in ("control.sock", "recorder.sock"):
        os.symlink(victim, os.path.join(supervisor.state_path, name))
    supervisor.configure({"alpha": {"label": "first"}})
    supervisor.start()
    if exit_or_start(supervisor) is None:
        supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
        assert victim.read_text() == "precious\n", "a socket was bound through a symlink"
        supervisor.configure({"alpha": {"label": "second"}})
        supervisor.signal(signal.SIGHUP)
        supervisor.wait_for(lambda: supervisor.count("reset") == 1, what="a reset")
        for name in ("control.sock", "recorder.sock"):
            assert stat.S_ISSOCK(os.lstat(os.path.join(supervisor.state_path, name)).st_mode)
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_state_files_are_0600(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    state = supervisor.state_path
    assert stat.S_IMODE(os.stat(state).st_mode) & 0o077 == 0
    for name in sorted(os.listdir(state)):
        mode = os.lstat(os.path.join(state, name)).st_mode
        assert not stat.S_ISLNK(mode), name
        assert stat.S_IMODE(mode) == 0o600, (name, oct(mode))
    assert {"mgr-supervisor.lock", "control.sock"} <= set(os.listdir(state))
