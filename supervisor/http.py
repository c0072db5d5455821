"""The HTTP endpoint: `/livez`, `/healthz`, `/healthz/NAME`, `/metrics`, served by the parent.

Served from the parent's one selector loop, like the control socket (docs/architecture.md,
"HTTP"): every socket is non-blocking; a connection has MAX_CONNECTIONS - 1 others at most
(the next one pushes out the oldest still sending its request), REQUEST_TIMEOUT to send a
complete request head and as long again to take the answer, and a head of MAX_HEAD_BYTES at
most. One request per connection (`Connection: close`); what a client does not take at once
is sent when its socket is writable. So a slow or hostile client costs a file descriptor for
a few seconds, never a turn of the loop, a signal or another client's answer. Without a
connection open there is no timer: the idle parent stays asleep.

What it answers comes from `Arbiter.status()` (the table, the beacons, the restart counts),
read at each request. `/metrics` is rendered in a short-lived child of the parent and reused
for a while (`metrics.MetricsRenderer`): the loop never renders. Nothing is secret.
prometheus_client is imported at the first `/metrics`, and this module only when
`[supervisor] http_listen` is set.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import selectors
import socket
import time
from collections.abc import Callable
from urllib.parse import unquote

from supervisor import config, metrics, opts, serving, views

LOG = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
REQUEST_TIMEOUT = 5.0
MAX_HEAD_BYTES = 8192
ACCEPT_BATCH = 64  # connections taken per wake-up, so a flood cannot hold the loop
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclasses.dataclass(frozen=True)
class Response:
    code: int
    body: bytes
    content_type: str = JSON
    allow: str = ""  # the Allow header of a 405

    def encode(self, head_only: bool = False) -> bytes:
        """The whole answer: status line, headers, body (none for HEAD)."""
        lines = [
            f"HTTP/1.1 {self.code} {REASONS[self.code]}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "Connection: close",
        ]
        if self.allow:
            lines.append(f"Allow: {self.allow}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        return head if head_only else head + self.body


class BadRequest(ValueError):
    """A request head this server does not take; the message says why (400)."""


def head_end(data: bytes) -> int:
    """Where a complete request head ends in `data` (after its blank line), or -1."""
    for terminator in (b"\r\n\r\n", b"\n\n"):
        found = data.find(terminator)
        if found >= 0:
            return found + len(terminator)
    return -1


def parse_request_line(head: bytes) -> tuple[str, str]:
    """(method, decoded path without its query) of a request head; BadRequest if malformed."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        method, target, version = line.decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("malformed request line") from None
    if not version.startswith("HTTP/1.") or not method.isalpha() or not target.startswith("/"):
        raise BadRequest("malformed request line")
    return method, unquote(target.split("?", 1)[0])


def respond(method: str, path: str, status: metrics.StatusSource) -> Response | None:
    """The answer to one request (HEAD is answered as GET; the caller drops the body), or
    None for `/metrics`, which `MetricsRenderer` renders apart."""
    if path not in ("/livez", "/healthz", "/metrics") and not path.startswith("/healthz/"):
        return Response(404, b'{"error": "not found: /livez, /healthz[/NAME], /metrics"}\n')
    if method not in ("GET", "HEAD"):
        return Response(405, b'{"error": "method not allowed: GET or HEAD"}\n', allow="GET, HEAD")
    if path == "/livez":  # answered by the loop, so it answers while the loop turns
        return Response(200, b"ok\n", TEXT)
    if path == "/metrics":
        return None
    name = path[len("/healthz/") :] if path.startswith("/healthz/") else None
    code, verdict = views.health_verdict(status(), name)
    return Response(code, json.dumps(verdict, indent=1).encode() + b"\n")


class _Connection(serving.Connection):
    """An HTTP client, and whether it has its answer (it is no longer sending a request)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__(sock, deadline)
        self.answered = False


class HttpServer(serving.OneShotServer):
    """Answers one request per connection from the parent's selector loop."""

    what = "HTTP"

    def __init__(
        self,
        listen: str,
        selector: selectors.BaseSelector,
        status: metrics.StatusSource,
        parent_fds: Callable[[], list[int]],
    ) -> None:
        """`parent_fds`: what a renderer child closes first (as every child of the parent)."""
        super().__init__(_bind(listen), selector)
        self.listen = listen
        self._status = status
        self._metrics = metrics.MetricsRenderer(status, selector, parent_fds)
        LOG.info("HTTP: serving /livez, /healthz, /metrics on %s", listen)

    def fds(self) -> list[int]:
        return super().fds() + self._metrics.fds()

    def next_deadline(self) -> float | None:
        deadlines = (super().next_deadline(), self._metrics.next_deadline())
        return min((d for d in deadlines if d is not None), default=None)

    def expire(self, now: float) -> None:
        """As every server's, and kill a renderer past its deadline."""
        self._metrics.expire(now)
        super().expire(now)

    def reap(self) -> None:
        """Reap the renderers that exited (children of the parent's own session, which the
        orphan reaper leaves alone)."""
        self._metrics.reap()

    def close(self) -> None:
        super().close()
        self._metrics.close()

    def _accept(self, mask: int) -> None:
        for _ in range(ACCEPT_BATCH):
            sock = self._take_connection()
            if sock is None:
                return
            if len(self._connections) >= MAX_CONNECTIONS and not self._make_room():
                sock.close()
                continue
            conn = _Connection(sock, time.monotonic() + REQUEST_TIMEOUT)
            self._connections[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, lambda m, c=conn: self._read(c))
            self._read(conn)  # the request is often there already: answered in this pass

    def _make_room(self) -> bool:
        """Drop the oldest connection still sending its request; False if all are answered."""
        for conn in self._connections.values():
            if not conn.answered:
                LOG.debug("HTTP: %d connections open; dropped the oldest", MAX_CONNECTIONS)
                self._drop(conn)
                return True
        return False

    def _read(self, conn: _Connection) -> None:
        chunk = self._receive(conn)
        if chunk is None:
            return
        if not chunk:  # the client gave up
            self._drop(conn)
            return
        if conn.answered:  # more after its request, while it waits for /metrics: ignored
            return
        end = head_end(conn.received)
        if end < 0:
            if len(conn.received) > MAX_HEAD_BYTES:
                self._answer(conn, Response(431, b'{"error": "request head too large"}\n'))
            return
        if end > MAX_HEAD_BYTES:
            self._answer(conn, Response(431, b'{"error": "request head too large"}\n'))
            return
        try:
            method, path = parse_request_line(conn.received[:end])
        except BadRequest as exc:
            self._answer(conn, Response(400, json.dumps({"error": str(exc)}).encode() + b"\n"))
            return
        head_only = method == "HEAD"
        try:
            response = respond(method, path, self._status)
            if response is None:
                self._serve_metrics(conn, head_only)
                return
        except Exception:  # never the loop's: supervision goes on without this answer
            LOG.exception("HTTP: %s %s failed", method, path)
            response = Response(500, b'{"error": "internal error, see the supervisor log"}\n')
        self._answer(conn, response, head_only)

    def _serve_metrics(self, conn: _Connection, head_only: bool) -> None:
        """The last render while it may be reused; else the next one, once it is done."""
        body = self._metrics.fresh()
        if body is not None:
            self._answer(conn, Response(200, body, self._metrics.content_type), head_only)
            return
        conn.answered = True  # its request is in: no longer one to push out for room
        conn.deadline = time.monotonic() + REQUEST_TIMEOUT

        def on_done(body: bytes | None) -> None:
            if self._connections.get(conn.sock.fileno()) is not conn:
                return  # dropped meanwhile (its deadline, a stop)
            if body is None:
                error = b'{"error": "/metrics could not be rendered, see the supervisor log"}\n'
                self._answer(conn, Response(503, error), head_only)
            else:
                self._answer(conn, Response(200, body, self._metrics.content_type), head_only)

        self._metrics.render(on_done)

    def _answer(self, conn: _Connection, response: Response, head_only: bool = False) -> None:
        conn.answered = True
        conn.deadline = time.monotonic() + REQUEST_TIMEOUT
        self._send(conn, response.encode(head_only))


def _bind(listen: str) -> socket.socket:
    """A non-blocking listener on `listen`; ConfigError (exit 78) if it cannot be had."""
    try:
        family, address = opts.http_address(listen)
    except ValueError as exc:  # validated already; the name may resolve differently now
        raise config.ConfigError(f"[supervisor] http_listen: {listen!r}: {exc}") from None
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise config.ConfigError(
            f"[supervisor] http_listen: cannot listen on {listen}: {exc.strerror or exc}"
        ) from None
    sock.setblocking(False)
    return sock
