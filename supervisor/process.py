"""Process-level tools shared by the parent and the workers: prctl, signalling, killing trees,
reaping (forking a child is `supervisor/children.py`).

Everything here addresses processes by pid (or, for a dead worker's leftovers, by the process
group the worker led), never the supervisor's own process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import signal
from collections.abc import Callable, Collection, Iterable

import psutil

LOG = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

# How long children a worker leaves get between SIGTERM and SIGKILL when it exits.
DESCENDANT_GRACE_SECONDS = 1.0


@functools.cache
def _libc_prctl() -> Callable[..., int] | None:
    """libc's prctl(2), looked up once: by the parent (`become_subreaper`) before its first
    fork, so a child's PR_SET_PDEATHSIG only calls it. Built in every worker, it would run
    ctypes' Python code there and copy ~75 KiB of the parent's pages per worker."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _prctl(option: int, value: int) -> bool:
    prctl = _libc_prctl()
    return prctl is not None and prctl(option, value, 0, 0, 0) == 0


def become_subreaper() -> bool:
    """Orphans of our workers' children are re-parented to us, so we can kill and reap them."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def set_death_signal(sig: int) -> bool:
    """This process gets `sig` when the thread that forked it exits (PR_SET_PDEATHSIG)."""
    return _prctl(_PR_SET_PDEATHSIG, sig)


def signal_pid(pid: int | None, sig: int) -> bool:
    """Send `sig` to one process; False if it is already gone."""
    if pid is None:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_gracefully(pid: int) -> None:
    """SIGTERM, then SIGCONT: a stopped process (SIGSTOP, a debugger) must see the SIGTERM."""
    if signal_pid(pid, signal.SIGTERM):
        signal_pid(pid, signal.SIGCONT)


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


def terminate_descendants(label: str, grace: float = DESCENDANT_GRACE_SECONDS) -> None:
    """Stop what this process started that still runs: SIGTERM, `grace` seconds, SIGKILL."""
    if not child_pids():
        return
    descendants = psutil.Process().children(recursive=True)
    if not descendants:
        return
    LOG.info("%s: terminating %d leftover child process(es)", label, len(descendants))
    if grace > 0:
        send_each(descendants, signal.SIGTERM)
        _, descendants = psutil.wait_procs(descendants, timeout=grace)
    send_each(descendants, signal.SIGKILL)


def child_pids() -> list[int]:
    """This process's children, from /proc/self/task/*/children (no scan of all of /proc)."""
    pids: list[int] = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return [child.pid for child in psutil.Process().child_pids()]
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children", "rb") as stream:
                pids.extend(int(pid) for pid in stream.read().split())
        except OSError:
            continue
    return pids


def session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def kill_session_orphans(session: int) -> None:
    """SIGKILL our live children of `session`: what a dead worker left outside its group."""
    for pid in child_pids():
        if session_of(pid) == session:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def reap_orphans(own_session: int, workers: Collection[int] = ()) -> list[int]:
    """Reap exited children from another session: orphans re-parented to us, the subreaper.

    Workers each lead a session of their own, so everything they leave behind is in one;
    a child the parent started itself (a subprocess run while importing a manager) is in
    the parent's session and is left to whoever waits for it. `workers` are never reaped
    here: one may exit just now, and its status is the caller's. Returns the pids reaped.
    """
    reaped: list[int] = []
    for pid in child_pids():
        if pid in workers or session_of(pid) in (None, own_session):
            continue
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if done:
            reaped.append(pid)
    return reaped
