"""The state directory: checked before it is trusted, locked for the parent's life.

`state_path` holds the single-instance lock, the control and recorder sockets and, by
default, the SQLite database of service records. A root supervisor writes there, so the
directory must be ours and closed to others.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

LOCK_FILE = "mgr-supervisor.lock"


class StateError(Exception):
    """The state directory cannot be used; the message says why, in one line."""


def prepare_directory(path: str) -> None:
    """Create `path` (0700) if missing; refuse it unless it is ours and closed to others."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
    except OSError as exc:
        raise StateError(f"cannot create {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StateError(f"{path} is not a directory")
    if info.st_uid != os.geteuid():
        raise StateError(
            f"{path} is owned by uid {info.st_uid}, not by the supervisor's user "
            f"(uid {os.geteuid()}); chown it or choose another state_path"
        )
    if info.st_mode & 0o022:
        raise StateError(
            f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
            "chmod 0700 it or choose another state_path"
        )


def acquire_lock(directory: str) -> int:
    """Hold an exclusive lock for as long as the returned fd stays open.

    The lock, not a probe of the control socket, decides whether another supervisor runs
    on this state_path: a busy or silent client can never make a live one look stale.
    """
    path = os.path.join(directory, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StateError(
                f"another supervisor is running on this state_path (pid {holder} holds {path})"
            ) from None
        raise StateError(f"cannot lock {path}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
