"""Process-level tools shared by the parent and the workers: prctl, signalling, killing trees.

Everything here addresses processes by pid (or, for a dead worker's leftovers, by the process
group the worker led), never the supervisor's own process group.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import signal
from collections.abc import Iterable

import psutil

LOG = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

# How long children a worker leaves get between SIGTERM and SIGKILL when it exits.
DESCENDANT_GRACE_SECONDS = 1.0


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Orphans of our workers' children are re-parented to us, so we can kill and reap them."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Get `sig` when the parent dies (a second line behind cotyledon's pipe).

    PR_SET_PDEATHSIG fires when the *thread* that forked us exits, so the parent forks from
    a thread that lives as long as it does.
    """
    _prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def signal_pid(pid: int | None, sig: int) -> bool:
    """Send `sig` to one process; False if it is already gone."""
    if pid is None:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal what is left of a worker's process group (the worker led it)."""
    try:
        os.killpg(pgid, sig)
    except OSError as exc:
        if exc.errno not in (errno.ESRCH, errno.EPERM):
            raise


def kill_trees(pids: Iterable[int]) -> None:
    """SIGKILL processes and every process below them (collected before anything dies)."""
    victims: list[psutil.Process] = []
    roots = list(pids)
    for pid in roots:
        try:
            root = psutil.Process(pid)
            victims.extend([root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            continue
    send_each(victims, signal.SIGKILL)
    for pid in roots:
        kill_group(pid)


def send_each(processes: Iterable[psutil.Process], sig: int) -> None:
    for process in processes:
        try:
            process.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def has_children() -> bool:
    """Whether this process has any child, cheaply: no scan of every process in /proc.

    Reads /proc/self/task/*/children (Linux 3.5+); where that is missing, says True so
    the caller falls back to psutil's full scan.
    """
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return True
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children", "rb") as stream:
                if stream.read().strip():
                    return True
        except FileNotFoundError:
            if tid == str(os.getpid()):
                return True  # no such file even for the main thread: not supported
        except OSError:
            return True
    return False


def terminate_descendants(label: str, grace: float = DESCENDANT_GRACE_SECONDS) -> None:
    """Stop what this process started that still runs: SIGTERM, `grace` seconds, SIGKILL."""
    if not has_children():
        return
    children = psutil.Process().children(recursive=True)
    if not children:
        return
    LOG.info("%s: terminating %d leftover child process(es)", label, len(children))
    if grace > 0:
        send_each(children, signal.SIGTERM)
        _, children = psutil.wait_procs(children, timeout=grace)
    send_each(children, signal.SIGKILL)


def reap_orphans(worker_pids: set[int]) -> list[int]:
    """Reap exited children that are not workers (orphans re-parented to us, the subreaper).

    Workers are left to multiprocessing, which reaps them itself: reaping them here would
    steal their exit statuses. Returns the pids reaped.
    """
    reaped: list[int] = []
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return reaped
        if info is None or info.si_pid == 0 or info.si_pid in worker_pids:
            return reaped
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            continue
        reaped.append(info.si_pid)
