"""The state directory: trusted only when ours, locked once, written without following links."""

from __future__ import annotations

import os
import stat

import pytest

from supervisor import state


def test_a_missing_directory_is_created_0700(tmp_path):
    path = tmp_path / "state"
    state.prepare_directory(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_directory_writable_by_others_is_refused(tmp_path, mode):
    path = tmp_path / "state"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(state.StateError, match="writable by group or others"):
        state.prepare_directory(str(path))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_directory_owned_by_someone_else_is_refused(tmp_path):
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)
    with pytest.raises(state.StateError, match="owned by uid 65534"):
        state.prepare_directory(str(path))


def test_the_lock_is_held_once(tmp_path):
    fd = state.acquire_lock(str(tmp_path))
    try:
        with pytest.raises(state.StateError, match=f"another supervisor.*pid {os.getpid()}"):
            state.acquire_lock(str(tmp_path))
    finally:
        os.close(fd)
    os.close(state.acquire_lock(str(tmp_path)))
