"""Process hygiene: the harness adopts whatever its targets leave behind and kills it by pid.

The harness makes itself a child subreaper, so a worker whose parent died is re-parented to
the harness instead of init: "every process a target started" is then simply every
descendant of the harness, orphans included, and the harness can reap them.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

PR_SET_CHILD_SUBREAPER = 36


def run_harness(work: Callable[[], int]) -> int:
    """Every harness script's main around its `work`: Ctrl-C and SIGTERM end it (exit 130),
    orphans are adopted, and however it ends every process it started is killed by pid."""
    # Explicitly: a shell starts background jobs with SIGINT ignored, which Python keeps.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    become_subreaper()
    try:
        return work()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        kill_leftovers()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def become_subreaper() -> None:
    """Adopt orphaned descendants (Linux prctl), so none escapes counting and killing."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}")


def runtime_ns(pid: int) -> int:
    """CPU time of all the process's threads in ns (schedstat), 0 once it is gone; psutil
    counts 10 ms ticks."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total


def reaped_children_cpu_ms(pid: int) -> float:
    """CPU time (user + system, ms) of the children the process has reaped (cutime + cstime
    of /proc/PID/stat, in clock ticks: 10 ms each at the usual 100 Hz)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[13]) + int(fields[14])) * 1000 / os.sysconf("SC_CLK_TCK")


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running: not gone, not a zombie waiting to be reaped."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            continue
    return running


def descendants() -> list[psutil.Process]:
    """Every live process below the harness: targets, their workers, adopted orphans."""
    return alive(psutil.Process().children(recursive=True))


def kill_leftovers() -> None:
    """At a harness's exit: kill what is left by pid, and say so if anything was."""
    killed = kill_all()
    if killed:
        print(f"killed {killed} leftover process(es)", file=sys.stderr)


def kill_all(rounds: int = 20) -> int:
    """SIGKILL every descendant by pid, parents first, until none is left; reap them.

    Returns how many processes were killed. Repeats because a parent may fork between the
    listing and its kill.
    """
    killed = 0
    for _ in range(rounds):
        victims = descendants()
        if not victims:
            break
        for victim in victims:
            try:
                os.kill(victim.pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                continue
        psutil.wait_procs(victims, timeout=2)
        reap()
    else:
        raise RuntimeError(f"processes still alive after {rounds} kill rounds: {descendants()}")
    reap()
    return killed


def reap() -> None:
    """Collect every exited child (orphans adopted as subreaper included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_exit(pidfd: int, timeout: float) -> float | None:
    """Block until the process behind `pidfd` exits; return when (monotonic), or None."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if poller.poll(max(0.0, timeout) * 1000):
        return time.monotonic()
    return None
