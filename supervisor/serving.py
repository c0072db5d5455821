"""What the control socket and the HTTP endpoint share: a listener on the parent's selector,
one request per connection, and a deadline for each client (docs/architecture.md, "The
parent's loop").

A reply is sent as the client's socket takes it, the rest when it is writable, and the
connection is closed once it is sent; a client past its deadline is dropped at the loop's
next pass. So a slow or silent client costs a descriptor for a few seconds, never a turn of
the loop.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time

LOG = logging.getLogger(__name__)

ACCEPT_PAUSE = 1.0  # after an accept failed (out of file descriptors): not accepting this long


class Connection:
    """One client: what it sent so far, what is left to send it, and its deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.received = b""
        self.reply = b""


class OneShotServer:
    """A listening socket and its clients, served from the loop's selector."""

    what = "server"  # for the log: "control socket", "HTTP"

    def __init__(self, sock: socket.socket, selector: selectors.BaseSelector) -> None:
        self._sock = sock
        self._selector = selector
        self._connections: dict[int, Connection] = {}  # oldest first
        self._paused_until: float | None = None  # accepting again then, after a failure
        selector.register(sock, selectors.EVENT_READ, self._accept)

    def fds(self) -> list[int]:
        """Every descriptor the server holds, for a forked worker to close."""
        return [self._sock.fileno(), *self._connections]

    def next_deadline(self) -> float | None:
        deadlines = [c.deadline for c in self._connections.values()]
        if self._paused_until is not None:
            deadlines.append(self._paused_until)
        return min(deadlines, default=None)

    def expire(self, now: float) -> None:
        """Drop connections past their deadline (a client too slow to ask or to read);
        accept again after a pause."""
        if self._paused_until is not None and now >= self._paused_until:
            self._paused_until = None
            self._selector.register(self._sock, selectors.EVENT_READ, self._accept)
        for conn in list(self._connections.values()):
            if now >= conn.deadline:
                LOG.debug("%s: a client missed its deadline; dropped", self.what)
                self._drop(conn)

    def close(self) -> None:
        for conn in list(self._connections.values()):
            self._drop(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self._sock)
        self._sock.close()

    def _accept(self, mask: int) -> None:
        """The listener is readable: take what waits (`_take_connection`)."""
        raise NotImplementedError

    def _take_connection(self) -> socket.socket | None:
        """The next connection waiting, non-blocking; None when none waits, or when accepting
        failed (out of file descriptors): the listener stays readable, so it is not watched
        for ACCEPT_PAUSE rather than spun on."""
        try:
            sock, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            LOG.warning(
                "%s: cannot accept a connection: %s; not accepting for %ss",
                self.what,
                exc.strerror or exc,
                ACCEPT_PAUSE,
            )
            self._selector.unregister(self._sock)
            self._paused_until = time.monotonic() + ACCEPT_PAUSE
            return None
        sock.setblocking(False)
        return sock

    def _receive(self, conn: Connection) -> bytes | None:
        """Add what the client sent to `conn.received`: the chunk (b"" once the client shut
        its side), or None when there was nothing to read or the connection was dropped."""
        try:
            chunk = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self._drop(conn)
            return None
        conn.received += chunk
        return chunk

    def _send(self, conn: Connection, reply: bytes) -> None:
        """Send `reply`, then close; what the socket does not take now waits for writable."""
        conn.reply = reply
        self._selector.modify(conn.sock, selectors.EVENT_WRITE, lambda m: self._on_writable(conn))
        self._on_writable(conn)

    def _on_writable(self, conn: Connection) -> None:
        try:
            sent = conn.sock.send(conn.reply)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        conn.reply = conn.reply[sent:]
        if not conn.reply:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            self._drop(conn)

    def _drop(self, conn: Connection) -> None:
        self._connections.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()
