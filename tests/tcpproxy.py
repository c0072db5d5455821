"""A loopback TCP proxy the tests own, to cut a real server off and bring it back.

Outages are made here, never by stopping the machine's PostgreSQL or RabbitMQ: `cut()`
closes every connection and refuses new ones; `restore()` accepts again.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target`; its thread ends with `close()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._open = True
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, name="tcp-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Drop every connection and refuse new ones (they are accepted and closed)."""
        with self._lock:
            self._open = False
        self._poke()

    def restore(self) -> None:
        with self._lock:
            self._open = True
        self._poke()

    def close(self) -> None:
        self._closed = True
        self._poke()
        self._thread.join(5)

    def _poke(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _serve(self) -> None:
        try:
            while not self._closed:
                for key, _ in self._selector.select(1.0):
                    sock = key.fileobj
                    if sock is self._wake_r:
                        self._wake_r.recv(4096)
                        if not self._open:
                            self._drop_all()
                    elif sock is self._listener:
                        self._accept()
                    else:
                        self._forward(sock)  # type: ignore[arg-type]
        finally:
            self._drop_all()
            self._listener.close()
            self._selector.close()

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        if not self._open:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for one, other in ((client, upstream), (upstream, client)):
            one.setblocking(False)
            self._pairs[one] = other
            self._selector.register(one, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        other = self._pairs.get(sock)
        try:
            data = sock.recv(65536)
            if data and other is not None:
                other.setblocking(True)
                other.sendall(data)
                other.setblocking(False)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        other = self._pairs.pop(sock, None)
        for one in (sock, other):
            if one is None:
                continue
            self._pairs.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            one.close()

    def _drop_all(self) -> None:
        for sock in list(self._pairs):
            self._drop(sock)
