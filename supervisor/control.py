"""The control socket: a Unix socket in the parent that answers status, restart, reload, stop.

One JSON object per line and per connection. Only root and the supervisor's own user may
talk to it (the socket is 0600, and each peer is checked with SO_PEERCRED); requests are
looked up in a fixed table of commands, never executed or imported.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
CLIENT_TIMEOUT = 5.0
COMMANDS = ("status", "restart", "reload", "stop")

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(Exception):
    """The control socket cannot be served or reached; the message says why."""


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class ControlServer:
    """Serves one request per connection from its own thread."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._sock = _bind(path)
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(CLIENT_TIMEOUT)
                try:
                    self._answer(conn)
                except (OSError, ValueError) as exc:
                    LOG.debug("control request failed: %s", exc)
                except Exception:
                    LOG.exception("control request failed")
                    with contextlib.suppress(OSError):
                        _send(conn, {"ok": False, "error": "internal error, see the log"})

    def _answer(self, conn: socket.socket) -> None:
        uid = peer_uid(conn)
        if uid not in (0, os.geteuid()):
            LOG.warning("control socket: refused a request from uid %d", uid)
            _send(conn, {"ok": False, "error": "permission denied"})
            return
        request = json.loads(_read_line(conn))
        if not isinstance(request, dict) or request.get("command") not in COMMANDS:
            _send(conn, {"ok": False, "error": f"unknown command; use one of {COMMANDS}"})
            return
        _send(conn, self._handler(request))


def _bind(path: str) -> socket.socket:
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    if os.path.exists(path):
        try:
            request(path, {"command": "status"})
        except ControlError:
            os.unlink(path)  # stale: left by a supervisor that is gone
        else:
            raise ControlError(f"{path}: another supervisor is running and listening here")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ControlError(f"{path}: cannot create the control socket: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError("request too large")
    return data.split(b"\n", 1)[0]


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def request(path: str, message: dict[str, Any], timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """Send one request to a supervisor's control socket and return its answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        with sock:
            sock.connect(path)
            _send(sock, message)
            answer = _read_line(sock)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            reason += " (is mgr-supervisor running?)"
        raise ControlError(f"cannot reach the supervisor at {path}: {reason}") from None
    if not answer:
        raise ControlError(f"{path}: the supervisor closed the connection without answering")
    return json.loads(answer)
