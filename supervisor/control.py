"""The control socket: a Unix socket the parent's loop answers (status, restart, reload, stop,
start).

One JSON object per line and per connection. Only root and the supervisor's own user may
talk to it (the socket is 0600, and each peer is checked with SO_PEERCRED); requests are
looked up in a fixed table of commands, never executed or imported. The server never
blocks: every socket is non-blocking and served from the parent's selector, each
connection has its own deadline, and their number is bounded, so a slow or silent client
delays nobody. Requests are bounded in size; replies are not.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from supervisor import serving

LOG = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
MAX_CONNECTIONS = 32
CLIENT_TIMEOUT = 5.0
COMMANDS = ("status", "restart", "reload", "stop", "start")

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(Exception):
    """The control socket cannot be served or reached; the message says why."""


class ControlDenied(ControlError):
    """The caller may not use the control socket: it runs, but not for this user."""


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class _Connection(serving.Connection):
    """A control client, and the uid it runs as (SO_PEERCRED)."""

    def __init__(self, sock: socket.socket, deadline: float, uid: int) -> None:
        super().__init__(sock, deadline)
        self.uid = uid


class ControlServer(serving.OneShotServer):
    """Answers one request per connection from the parent's selector loop."""

    what = "control socket"

    def __init__(self, path: str, handler: Handler, selector: selectors.BaseSelector) -> None:
        super().__init__(listen_at(path, "control socket"), selector)
        self.path = path
        self._handler = handler

    def close(self) -> None:
        super().close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _accept(self, mask: int) -> None:
        sock = self._take_connection()
        if sock is None:
            return
        if len(self._connections) >= MAX_CONNECTIONS:
            LOG.debug("control socket: %d connections open; refused one", MAX_CONNECTIONS)
            sock.close()
            return
        conn = _Connection(sock, time.monotonic() + CLIENT_TIMEOUT, peer_uid(sock))
        self._connections[sock.fileno()] = conn
        self._selector.register(sock, selectors.EVENT_READ, lambda m: self._on_readable(conn))

    def _on_readable(self, conn: _Connection) -> None:
        chunk = self._receive(conn)
        if chunk is None:
            return
        if b"\n" not in conn.received and chunk and len(conn.received) <= MAX_REQUEST_BYTES:
            return
        # Refused only once its request is read: closing on unread data would reset the
        # connection, and the client would lose the answer that says why.
        if conn.uid not in (0, os.geteuid()):
            LOG.warning("control socket: refused a request from uid %d", conn.uid)
            self._answer(conn, {"ok": False, "error": "permission denied"})
            return
        if len(conn.received.split(b"\n", 1)[0]) > MAX_REQUEST_BYTES:
            self._answer(conn, {"ok": False, "error": "malformed request: too large"})
            return
        self._answer(conn, self._respond(conn.received.split(b"\n", 1)[0]))

    def _respond(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError) as exc:
            LOG.debug("control socket: malformed request: %s", type(exc).__name__)
            return {"ok": False, "error": "malformed request: not a JSON object"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "malformed request: not a JSON object"}
        if request.get("command") not in COMMANDS:
            return {"ok": False, "error": f"unknown command; use one of {COMMANDS}"}
        return self._handler(request)

    def _answer(self, conn: _Connection, message: dict[str, Any]) -> None:
        self._send(conn, json.dumps(message).encode() + b"\n")


def listen_at(path: str, what: str) -> socket.socket:
    """Listen at `path` (0600, non-blocking), replacing a socket file nobody listens on.

    The caller holds the single-instance lock; a listener found here anyway is another
    program (a control_socket outside state_path), and is left alone.
    """
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    if os.path.lexists(path):
        if _someone_listens(path):
            raise ControlError(f"{path}: another process is listening on this socket")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ControlError(f"{path}: cannot create the {what}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _someone_listens(path: str) -> bool:
    """A connect that does not wait: refused means nobody listens; accepted or busy means one."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except BlockingIOError:
        return True
    except OSError as exc:
        return exc.errno not in (errno.ENOTSOCK, errno.ECONNREFUSED)
    finally:
        probe.close()
    return True


def request(path: str, message: dict[str, Any], timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """Send one request to a supervisor's control socket and return its answer (any size)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    try:
        with sock:
            sock.connect(path)
            sock.sendall(json.dumps(message).encode() + b"\n")
            while not chunks or not chunks[-1].endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ControlDenied(
                f"{path}: {reason}: ask as the supervisor's user, or as root"
            ) from None
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            reason += " (is mgr-supervisor running?)"
        raise ControlError(f"cannot reach the supervisor at {path}: {reason}") from None
    answer = b"".join(chunks).split(b"\n", 1)[0]
    if not answer:
        raise ControlError(f"{path}: the supervisor closed the connection without answering")
    try:
        reply = json.loads(answer)
    except ValueError:
        raise ControlError(f"{path}: the answer is not JSON") from None
    if not isinstance(reply, dict):
        raise ControlError(f"{path}: the answer is not a JSON object")
    return reply
