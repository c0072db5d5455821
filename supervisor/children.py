"""One way to fork a child of a supervisor process (docs/architecture.md, "Children").

Workers, the recorder, `/metrics` renderers and `run_in_child` all start with `fork_child`:
signals held blocked across the fork until the child's own handlers exist, the inherited
heap frozen, the parent's wake-up fd and descriptors closed, a signal when the parent dies,
then the child's main, and `exit_now` with its status whatever happens. Nothing a child
does returns into the code of the process it was forked from.
"""

from __future__ import annotations

import collections.abc
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable, Iterable
from typing import NoReturn

from supervisor import process

LOG = logging.getLogger(__name__)

# Default again in a child of `run_in_child` (handled by the loop of the process it left).
_CHILD_SIGNALS = frozenset(
    {signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR2, signal.SIGCHLD, signal.SIGALRM}
)


def fork_child(
    main: Callable[[], int],
    *,
    label: str,
    blocked: Iterable[int],
    parent_fds: Iterable[int] = (),
    death_signal: int = signal.SIGKILL,
    new_session: bool = False,
    short_lived: bool = False,
) -> int:
    """Fork a child that runs `main()` and exits with what it returns; its pid.

    In the child, before `main`: the inherited heap frozen (`short_lived`: the collector
    off instead), a session of its own if `new_session`, `parent_fds` closed,
    `death_signal` when the parent dies. `blocked` signals stay blocked in the child until
    `main` unblocks them. An exception out of `main` is logged as the child's internal
    error, status 1. Raises OSError when the fork fails.
    """
    parent_pid = os.getpid()
    pid = fork_blocking(blocked)
    if pid:
        return pid
    status = 1
    try:
        if short_lived:
            gc.disable()  # it lives milliseconds: no collection need walk the parent's heap
        else:
            freeze_inherited_heap()
        signal.set_wakeup_fd(-1)  # the parent's loop's pipe: not ours to write
        if new_session:
            with contextlib.suppress(OSError):
                os.setsid()
        close_parent_fds(parent_fds)
        die_with_parent(parent_pid, death_signal)
        status = main()
    except BaseException:
        LOG.exception("%s: internal error", label)
    exit_now(status)


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


def _prepare_fork() -> None:
    """In the parent, right before a fork: answer once, in pages every child shares, a
    question each child would otherwise answer for itself at great cost.

    `logging.LogRecord` asks `isinstance(args[0], collections.abc.Mapping)` of every line
    with one argument. Unless the answer for that argument's type is cached (never asked in
    this process, or any ABC registered since, which voids every cached "no"), the check walks
    every Mapping subclass loaded and writes into each one's cache: a worker's first such line
    would copy ~190 KiB of the parent's pages. A cached answer costs the parent well under a
    microsecond.
    """
    for value in ("", 0):
        isinstance(value, collections.abc.Mapping)


def freeze_inherited_heap() -> None:
    """First thing in a forked child: every object it inherited goes to the permanent
    generation, so its garbage collector never walks them, so never writes to their pages.

    Without it each full collection in a worker copies the parent's whole heap page by page
    (its USS about doubles). Done in the child, not around the fork in the parent: a parent
    that froze and unfroze around every fork would put its young garbage in the oldest
    generation, which full collections seldom reach. Freezing splices the generation lists:
    it writes to no object but their heads.
    """
    gc.freeze()


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
    process.set_death_signal(sig)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def exit_now(status: int) -> NoReturn:
    """The end of a forked child: flush the logs and leave without the interpreter's
    finalization or atexit hooks (they belong to the process it was forked from)."""
    with contextlib.suppress(Exception):
        logging.shutdown()
    os._exit(status)


def run_in_child(function: Callable[[], object], label: str) -> str | None:
    """Run `function` in a forked child and wait for it: what it imports and builds ends
    with the child instead of staying in this process's heap for as long as it runs.

    None when it returned; else what went wrong in a few words: the exception's type (its
    text may quote a secret, such as a connection URL, so it is only logged at debug level
    by the child), or how the child ended. The child dies with this process.
    """
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)

    def main() -> int:
        return _run_reporting(function, label, write_fd)

    try:
        pid = fork_child(main, label=label, blocked=_CHILD_SIGNALS, parent_fds=[read_fd])
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    with open(read_fd, "rb") as pipe:
        said = pipe.read().decode(errors="replace")
    _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    if code == 0:
        return None
    return said or (f"killed by signal {-code}" if code < 0 else f"exit status {code}")


def _run_reporting(function: Callable[[], object], label: str, write_fd: int) -> int:
    """`run_in_child`'s main: default signal dispositions (its parent's handlers only wake
    its parent's loop), the function; a failure's type written to `write_fd`."""
    for sig in _CHILD_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        function()
    except BaseException as exc:
        LOG.debug("%s failed", label, exc_info=True)
        with contextlib.suppress(OSError):
            os.write(write_fd, type(exc).__name__.encode())
        return 1
    return 0
