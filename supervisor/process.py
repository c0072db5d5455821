"""Process-level tools shared by the parent and the workers: prctl, signalling, killing trees.

Everything here addresses processes by pid (or, for a dead worker's leftovers, by the process
group the worker led), never the supervisor's own process group.
"""

from __future__ import annotations

import collections.abc
import contextlib
import ctypes
import errno
import functools
import gc
import logging
import os
import signal
from collections.abc import Callable, Collection, Iterable
from typing import NoReturn

import psutil

LOG = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

# Default again in a child of `run_in_child` (handled by the loop of the process it left).
_CHILD_SIGNALS = frozenset(
    {signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR2, signal.SIGCHLD, signal.SIGALRM}
)
# How long children a worker leaves get between SIGTERM and SIGKILL when it exits.
DESCENDANT_GRACE_SECONDS = 1.0


@functools.cache
def _libc_prctl() -> Callable[..., int] | None:
    """libc's prctl(2), looked up once: by the parent (`become_subreaper`) before its first
    fork, so a child's PR_SET_PDEATHSIG only calls it. Building it in every worker ran
    ctypes' Python code there and copied ~75 KiB of the parent's pages per worker."""
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


def _prepare_fork() -> None:
    """In the parent, right before a fork: answer once, in pages every child shares, a
    question each child would otherwise answer for itself at great cost.

    `logging.LogRecord` asks `isinstance(args[0], collections.abc.Mapping)` of every line
    with one argument. Unless the answer for that argument's type is cached (never asked in
    this process, or any ABC registered since, which voids every cached "no"), the check walks
    every Mapping subclass loaded and writes into each one's cache: a worker's first such line
    copied ~190 KiB of the parent's pages. A cached answer costs the parent well under a
    microsecond.
    """
    for value in ("", 0):
        isinstance(value, collections.abc.Mapping)


def freeze_inherited_heap() -> None:
    """First thing in a forked child: every object it inherited goes to the permanent
    generation, so its garbage collector never walks them, so never writes to their pages.

    Without it each full collection in a worker copies the parent's whole heap page by page
    (its USS about doubles). Done in the child, not around the fork in the parent: a parent
    that froze and unfroze around every fork put its young garbage in the oldest generation,
    which full collections then seldom reached (+11 MiB of RSS over a 10-minute chaos run).
    Freezing splices the generation lists: it writes to no object but their heads.
    """
    gc.freeze()


def fork_blocking(signals: Iterable[int]) -> int:
    """`os.fork()` with `signals` blocked: still blocked in the child, which unblocks them
    once its own handlers exist (the parent's would write to the parent's wake-up pipe);
    as they were in the parent once it returns, or raises OSError."""
    _prepare_fork()
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    return pid


def run_in_child(function: Callable[[], object], label: str) -> str | None:
    """Run `function` in a forked child and wait for it: what it imports and builds ends
    with the child instead of staying in this process's heap for as long as it runs.

    None when it returned; else what went wrong in a few words: the exception's type (its
    text may quote a secret, such as a connection URL, so it is only logged at debug level
    by the child), or how the child ended. The child dies with this process.
    """
    parent_pid = os.getpid()
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = fork_blocking(_CHILD_SIGNALS)
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:
        os.close(read_fd)
        _child_main(function, label, parent_pid, write_fd)
    os.close(write_fd)
    with open(read_fd, "rb") as pipe:
        said = pipe.read().decode(errors="replace")
    _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    if code == 0:
        return None
    return said or (f"killed by signal {-code}" if code < 0 else f"exit status {code}")


def _child_main(
    function: Callable[[], object], label: str, parent_pid: int, write_fd: int
) -> NoReturn:
    """`run_in_child`'s child: default signal dispositions (its parent's handlers only
    wake its parent's loop), the function, then `exit_now`."""
    status = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in _CHILD_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        die_with_parent(parent_pid, signal.SIGKILL)
        function()
        status = 0
    except BaseException as exc:
        LOG.debug("%s failed", label, exc_info=True)
        with contextlib.suppress(OSError):
            os.write(write_fd, type(exc).__name__.encode())
    exit_now(status)


def exit_now(status: int) -> NoReturn:
    """The end of a forked child: flush the logs and leave without the interpreter's
    finalization or atexit hooks (they belong to the process it was forked from)."""
    with contextlib.suppress(Exception):
        logging.shutdown()
    os._exit(status)


def close_parent_fds(fds: Iterable[int]) -> None:
    """In a forked child: close the parent's descriptors (its loop, lock, sockets, pipes),
    those already gone included."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Get `sig` as soon as the parent dies.

    PR_SET_PDEATHSIG fires when the *thread* that forked us exits: the parent has one
    thread, so that is when the parent itself dies.
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


def route_signals_to(fd: int, signals: Iterable[int]) -> None:
    """Deliver `signals` as their numbers written to `fd`, for a loop to read and handle.

    Python-level handlers that do nothing but let `signal.set_wakeup_fd` write the number;
    caught, not ignored, so each is reset to its default in whatever this process execs.
    """
    signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    for sig in signals:
        signal.signal(sig, _wake_only)


def _wake_only(signum: int, frame: object) -> None:
    """The signal's number reaches the loop through the wake-up fd."""


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
    if not children():
        return
    descendants = psutil.Process().children(recursive=True)
    if not descendants:
        return
    LOG.info("%s: terminating %d leftover child process(es)", label, len(descendants))
    if grace > 0:
        send_each(descendants, signal.SIGTERM)
        _, descendants = psutil.wait_procs(descendants, timeout=grace)
    send_each(descendants, signal.SIGKILL)


def children() -> list[int]:
    """This process's children, from /proc/self/task/*/children (no scan of all of /proc)."""
    pids: list[int] = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return [child.pid for child in psutil.Process().children()]
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
    for pid in children():
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
    for pid in children():
        if pid in workers or session_of(pid) in (None, own_session):
            continue
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if done:
            reaped.append(pid)
    return reaped
