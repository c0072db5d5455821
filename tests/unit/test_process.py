"""Process helpers that need no supervisor: finding children, reaping only orphans, forking
with signals blocked and a log line's costly check answered first, running a function in a
child."""

from __future__ import annotations

import abc
import collections.abc
import os
import signal
import subprocess
import sys
import time

from supervisor import children
from supervisor.process import child_pids, reap_orphans


def test_children_sees_a_child_and_its_absence():
    assert child_pids() == []
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert child_pids() == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert child_pids() == []


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


def test_fork_blocking_blocks_in_the_child_only():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    read_fd, write_fd = os.pipe()
    pid = children.fork_blocking({signal.SIGHUP, signal.SIGUSR2})
    if pid == 0:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set())
        os.write(write_fd, b"1" if {signal.SIGHUP, signal.SIGUSR2} <= blocked else b"0")
        os._exit(0)
    os.close(write_fd)
    assert os.read(read_fd, 1) == b"1"
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before


def test_a_forked_child_finds_a_log_lines_mapping_check_answered():
    """LogRecord's `isinstance(arg, Mapping)`, uncached, walks every Mapping subclass in the
    child and copies the parent's pages; fork_blocking answers it in the parent first."""

    class Registered(abc.ABC):
        @abc.abstractmethod
        def method(self) -> None: ...

    Registered.register(type("Fresh", (), {}))  # voids every cached "not a Mapping"
    read_fd, write_fd = os.pipe()
    pid = children.fork_blocking(set())
    if pid == 0:
        walked = []
        subclasscheck = abc.ABCMeta.__subclasscheck__
        abc.ABCMeta.__subclasscheck__ = lambda cls, sub: (
            walked.append(cls) or subclasscheck(cls, sub)
        )
        isinstance("a line's one argument", collections.abc.Mapping)
        isinstance(42, collections.abc.Mapping)
        os.write(write_fd, str(len(walked)).encode())
        os._exit(0)
    os.close(write_fd)
    walked = os.read(read_fd, 16)
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert walked == b"0", f"the child walked {walked.decode()} ABCs"


def test_run_in_child_leaves_what_the_function_imports_in_the_child(tmp_path):
    """The function runs (its file is written), its import stays in the child, the child
    is reaped and no descriptor is left open."""
    assert "colorsys" not in sys.modules
    fds = set(os.listdir("/proc/self/fd"))
    ran = tmp_path / "ran"

    def work() -> None:
        import colorsys

        ran.write_text(f"{os.getpid()} {colorsys.__name__}")

    assert children.run_in_child(work, "test") is None
    pid, name = ran.read_text().split()
    assert name == "colorsys" and int(pid) != os.getpid()
    assert "colorsys" not in sys.modules
    assert child_pids() == []
    assert set(os.listdir("/proc/self/fd")) == fds


def test_run_in_child_says_what_was_raised_by_its_type_only():
    """An exception's text may quote a secret (a connection URL): only its type is told."""

    def fail() -> None:
        raise ValueError("postgresql://user:hunter2@db/records")

    assert children.run_in_child(fail, "test") == "ValueError"


def test_run_in_child_says_how_a_child_that_raised_nothing_ended():
    assert children.run_in_child(lambda: os._exit(3), "test") == "exit status 3"
    killed = children.run_in_child(lambda: os.kill(os.getpid(), signal.SIGKILL), "test")
    assert killed == "killed by signal 9"


def test_run_in_child_gives_the_child_default_signal_dispositions():
    """The caller's handlers only wake the caller's loop: in the child a SIGTERM ends it."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:

        def terminated() -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)

        started = time.monotonic()
        assert children.run_in_child(terminated, "test") == "killed by signal 15"
        assert time.monotonic() - started < 5
    finally:
        signal.signal(signal.SIGTERM, previous)
