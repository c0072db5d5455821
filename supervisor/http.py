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
for a while (`MetricsRenderer`): the loop never renders. Nothing is secret.
prometheus_client is imported at the first `/metrics`, and this module only when
`[supervisor] http_listen` is set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import selectors
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

from supervisor import children, config, health, process, serving
from supervisor.policy import State

LOG = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
REQUEST_TIMEOUT = 5.0
MAX_HEAD_BYTES = 8192
ACCEPT_BATCH = 64  # connections taken per wake-up, so a flood cannot hold the loop
RENDER_SHARE = 0.01  # at most this share of a core goes to rendering /metrics
MAX_REUSE = 1.0  # seconds: a /metrics render is never older than this
RENDER_HEADER = struct.Struct("!dQ")  # from the renderer: its cost (seconds), the body's length
NAMESPACE = "mgr_supervisor"
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

StatusSource = Callable[[], dict[str, Any]]


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


def respond(method: str, path: str, status: StatusSource) -> Response | None:
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
    code, verdict = health_verdict(status(), name)
    return Response(code, json.dumps(verdict, indent=1).encode() + b"\n")


# -- /healthz


def health_verdict(status: dict[str, Any], name: str | None = None) -> tuple[int, dict[str, Any]]:
    """(200 or 503, the JSON body) for every manager, or (404, ...) for an unknown NAME.

    Every manager must be RUNNING with all its wanted workers ready, none hung, none waiting
    for the broker, and the database reachable. A STOPPED manager (stopped on request) does
    not fail `/healthz`, as it does not fail `mgr-supervisorctl status`; its own
    `/healthz/NAME` is 503: it serves nothing.
    """
    database = status.get("database", "unknown")
    verdicts = [manager_verdict(m, database) for m in status["managers"]]
    if name is not None:
        verdicts = [v for v in verdicts if v["name"] == name]
        if not verdicts:
            return 404, {"status": "unknown", "error": f"no manager named {name!r}"}
        healthy = verdicts[0]["healthy"]
    else:
        counted = [v for v in verdicts if v["state"] != State.STOPPED.value]
        healthy = all(v["healthy"] for v in counted) and database != "unreachable"
    body = {"status": "ok" if healthy else "unhealthy", "database": database, "managers": verdicts}
    return (200 if healthy else 503), body


def manager_verdict(manager: dict[str, Any], database: str) -> dict[str, Any]:
    """One manager's state and the reasons it is not healthy (none when it is)."""
    state, ready, wanted = manager["state"], manager["ready"], manager["wanted"]
    reasons = []
    if state == State.FATAL.value:
        reasons.append(
            f"FATAL: gave up after failed starts (last: {manager['last_exit']}); "
            "mgr-supervisorctl start or restart, or a reload, starts it again"
        )
    elif state == State.BACKOFF.value:
        reasons.append(f"BACKOFF: waiting to start again (last: {manager['last_exit']})")
    elif state == State.STOPPED.value:
        reasons.append("STOPPED: stopped on request (mgr-supervisorctl stop)")
    elif state != State.RUNNING.value:
        reasons.append(f"{state}: {ready}/{wanted} workers ready")
    elif ready < wanted:
        reasons.append(f"{ready}/{wanted} workers ready")
    for worker in manager["workers"]:
        label = f"worker {worker['worker_id']} (pid {worker['pid']})"
        if worker.get("problem"):
            reasons.append(f"{label} hung: {worker['problem']}")
        if worker.get("process_state") == "stopped":
            reasons.append(f"{label}: process stopped (SIGSTOP)")
        if worker.get("phase") == health.WAITING_FOR_BROKER:
            reasons.append(f"{label}: broker down: waiting for the message broker")
        elif worker.get("rpc") == "reconnecting":
            reasons.append(f"{label}: broker down: RPC consumers reconnecting")
    if database == "unreachable":
        reasons.append("database down: service records wait for it")
    return {
        "name": manager["name"],
        "state": state,
        "healthy": not reasons,
        "ready": ready,
        "wanted": wanted,
        "reasons": reasons,
    }


# -- /metrics


def metrics_text(status: dict[str, Any], pid: int | None = None) -> bytes:
    """The Prometheus text format of `status`, by prometheus_client.

    A registry of its own per scrape: nothing global, nothing kept between scrapes. The
    process collector reports `pid` (default: this process): the parent's own CPU and
    memory, when a renderer child renders for it.
    """
    from prometheus_client import CollectorRegistry, ProcessCollector
    from prometheus_client.exposition import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    ProcessCollector(namespace=NAMESPACE, pid=lambda: pid or os.getpid(), registry=registry)
    return generate_latest(registry)


def metrics_content_type() -> str:
    """The text format's content type (this imports prometheus_client)."""
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    return CONTENT_TYPE_LATEST


class MetricsRenderer:
    """`/metrics` rendered in a short-lived child of the parent, one at a time, and reused.

    Why a child: a render of 256 workers costs 10-25 ms of CPU (prometheus_client formats
    each of ~1,050 samples), and in the parent it held the one loop that long: a SIGCHLD or
    a SIGHUP waited, and restarts were slower while scraped (docs/benchmarks-history.md,
    "Health and metrics"). A fork of the parent has the table and the beacons as they are: it
    renders, writes the body to a pipe and exits. The parent forks, reads the pipe from its
    loop and reaps the child, which lives at most REQUEST_TIMEOUT: ~8 ms of the parent's CPU
    at 256 workers, never more than ~5 ms in one pass.

    Why reuse: a client scraping 20 times a second would keep a core busy rendering. A
    scrape that comes within 1/RENDER_SHARE times the last render's cost of it (at most
    MAX_REUSE) gets that body again; scrapes that come while a render runs wait for it. A
    Prometheus server scraping every few seconds always gets a fresh render.
    """

    def __init__(
        self,
        status: StatusSource,
        selector: selectors.BaseSelector,
        parent_fds: Callable[[], list[int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._status = status
        self._selector = selector
        self._parent_fds = parent_fds
        self._clock = clock
        self.content_type = ""  # known once prometheus_client is imported, at the first render
        self._last: bytes | None = None
        self._reuse_until = 0.0
        self.pids: set[int] = set()  # renderers not reaped yet
        self._pipe = -1  # from the renderer at work, if any
        self._received = bytearray()
        self._began = 0.0
        self._waiting: list[Callable[[bytes | None], None]] = []

    def fresh(self) -> bytes | None:
        """The last render, while it may be reused."""
        return self._last if self._clock() < self._reuse_until else None

    def render(self, on_done: Callable[[bytes | None], None]) -> None:
        """`on_done(body)` once a render is done (None if it failed), from the loop."""
        self._waiting.append(on_done)
        if self._pipe < 0:
            self._start()

    def fds(self) -> list[int]:
        return [self._pipe] if self._pipe >= 0 else []

    def next_deadline(self) -> float | None:
        return self._began + REQUEST_TIMEOUT if self._pipe >= 0 else None

    def expire(self, now: float) -> None:
        if self._pipe >= 0 and now >= self._began + REQUEST_TIMEOUT:
            LOG.warning("HTTP: /metrics not rendered within %ss; renderer killed", REQUEST_TIMEOUT)
            self._finish(None)

    def reap(self) -> None:
        """Wait for the renderers that exited."""
        for pid in list(self.pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.pids.discard(pid)

    def close(self) -> None:
        """Stop a render under way (whoever waits for it gets None) and reap every renderer."""
        self._finish(None)
        for pid in self.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids.clear()

    def _start(self) -> None:
        self.content_type = metrics_content_type()  # imported in the parent: once, not per child
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        self._began = began = self._clock()

        def main() -> int:
            return self._render_child(write_fd, began)

        try:  # every signal blocked in the child for its whole short life
            pid = children.fork_child(
                main,
                label="HTTP: rendering /metrics",
                blocked=signal.valid_signals(),
                parent_fds=[*self._parent_fds(), read_fd],
                short_lived=True,
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            LOG.warning("HTTP: cannot fork to render /metrics (%s): rendered in the loop", exc)
            body: bytes | None = None
            try:
                body = metrics_text(self._status())
                self._store(body, self._clock() - began)
            except Exception:  # answered 503, as a renderer's failure is
                LOG.exception("HTTP: rendering /metrics failed")
            self._answer_waiting(body)
            return
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.pids.add(pid)
        self._pipe = read_fd
        self._received.clear()
        self._selector.register(read_fd, selectors.EVENT_READ, self._on_readable)

    def _render_child(self, write_fd: int, began: float) -> int:
        """The renderer's main: render, write the body to the pipe."""
        body = metrics_text(self._status(), pid=os.getppid())
        cost = self._clock() - began
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(RENDER_HEADER.pack(cost, len(body)) + body)
        return 0

    def _on_readable(self, mask: int) -> None:
        while True:
            try:
                chunk = os.read(self._pipe, 1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            if not chunk:
                break
            self._received += chunk
        header = RENDER_HEADER.size
        body: bytes | None = None
        if len(self._received) >= header:
            cost, length = RENDER_HEADER.unpack_from(self._received)
            if len(self._received) == header + length:
                body = bytes(self._received[header:])
                self._store(body, cost)
        if body is None:
            LOG.warning("HTTP: the /metrics renderer ended without a whole answer")
        self._finish(body)

    def _store(self, body: bytes, cost: float) -> None:
        self._last = body
        self._reuse_until = self._began + min(cost / RENDER_SHARE, MAX_REUSE)

    def _finish(self, body: bytes | None) -> None:
        """The render is over: close the pipe, kill a renderer still running, answer."""
        if self._pipe >= 0:
            self._selector.unregister(self._pipe)
            os.close(self._pipe)
            self._pipe = -1
            if body is None:
                for pid in self.pids:
                    process.signal_pid(pid, signal.SIGKILL)
        self._answer_waiting(body)

    def _answer_waiting(self, body: bytes | None) -> None:
        waiting, self._waiting = self._waiting, []
        for on_done in waiting:
            on_done(body)


class StatusCollector:
    """A prometheus_client collector over one status snapshot (`Arbiter.status()`)."""

    def __init__(self, status: dict[str, Any]) -> None:
        self._status = status

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        status = self._status

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return CounterMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)

        yield GaugeMetricFamily(
            f"{NAMESPACE}_uptime_seconds", "Seconds since the supervisor started.", status["uptime"]
        )
        reloads = status["reloads"]
        yield CounterMetricFamily(
            f"{NAMESPACE}_reloads", "Reloads applied (SIGHUP, reload).", reloads["applied"]
        )
        yield CounterMetricFamily(
            f"{NAMESPACE}_reloads_rejected",
            "Reloads rejected: an invalid config, files changed meanwhile, or not applicable.",
            reloads["rejected"],
        )
        if reloads["last_at"] is not None:
            yield GaugeMetricFamily(
                f"{NAMESPACE}_last_reload_timestamp_seconds",
                "Unix time of the last reload, applied or rejected.",
                reloads["last_at"],
            )
            yield GaugeMetricFamily(
                f"{NAMESPACE}_last_reload_successful",
                "1 if the last reload was applied, 0 if it was rejected.",
                1 if reloads["last_ok"] else 0,
            )
        if status["database"] != "unknown":
            yield GaugeMetricFamily(
                f"{NAMESPACE}_database_up",
                "1 if the service recorder's last database call succeeded, else 0.",
                1 if status["database"] == "ok" else 0,
            )
        if status.get("report_age") is not None:
            yield GaugeMetricFamily(
                f"{NAMESPACE}_service_report_age_seconds",
                "Seconds since the service recorder last wrote the workers' heartbeat reports.",
                status["report_age"],
            )

        by_manager = ("manager",)
        states = gauge("manager_state", "1 for the manager's current state.", ("manager", "state"))
        wanted = gauge("manager_workers_wanted", "Workers the config asks for.", by_manager)
        running = gauge("manager_workers_running", "Workers running, not stopping.", by_manager)
        ready = gauge("manager_workers_ready", "Wanted workers that are ready.", by_manager)
        restarts = counter("manager_restarts", "Workers started again.", by_manager)
        failed = counter("manager_failed_starts", "Failed starts (see start_secs).", by_manager)
        not_ready = gauge(
            "manager_not_ready_seconds",
            "Seconds since the manager was last RUNNING (0 while it is; since it was added "
            "if it never was).",
            by_manager,
        )
        served = counter("rpc_calls_served", "RPC calls and casts served.", by_manager)
        rpc_failed = counter("rpc_calls_failed", "RPC calls and casts that raised.", by_manager)
        rejected = counter(
            "rpc_calls_rejected",
            "RPC calls and casts the dispatcher refused: no such method, an unsupported "
            "version, arguments the method does not take.",
            by_manager,
        )
        by_worker = ("manager", "worker")
        phase = gauge("worker_phase", "1 for the worker's current phase.", (*by_worker, "phase"))
        rss = gauge("worker_resident_memory_bytes", "Resident memory (RSS).", by_worker)
        heartbeat = gauge(
            "worker_heartbeat_age_seconds", "Seconds since the worker's phase changed.", by_worker
        )
        uptime = gauge("worker_uptime_seconds", "Seconds since the worker was forked.", by_worker)
        for m in status["managers"]:
            name = m["name"]
            for each in State:
                states.add_metric([name, each.value], 1 if m["state"] == each.value else 0)
            wanted.add_metric([name], m["wanted"])
            running.add_metric([name], m["running"])
            ready.add_metric([name], m["ready"])
            restarts.add_metric([name], m["restarts"])
            failed.add_metric([name], m["failed_starts"])
            not_ready.add_metric([name], m["not_ready_for"])
            served.add_metric([name], m["rpc_served"])
            rpc_failed.add_metric([name], m["rpc_failed"])
            rejected.add_metric([name], m["rpc_rejected"])
            seen: set[str] = set()
            for w in m["workers"]:
                worker = str(w["worker_id"])
                if worker in seen:  # a duplicate series would fail the whole scrape
                    continue
                seen.add(worker)
                phase.add_metric([name, worker, w["phase"]], 1)
                if w["rss_mb"] is not None:
                    rss.add_metric([name, worker], round(w["rss_mb"] * 2**20))
                heartbeat.add_metric([name, worker], w["heartbeat_age"])
                uptime.add_metric([name, worker], w["uptime"])
        yield from (states, wanted, running, ready, restarts, failed, not_ready)
        if status.get("rpc"):
            yield from (served, rpc_failed, rejected)
        yield from (phase, rss, heartbeat, uptime)


# -- the server


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
        status: StatusSource,
        parent_fds: Callable[[], list[int]],
    ) -> None:
        """`parent_fds`: what a renderer child closes first (as every child of the parent)."""
        super().__init__(_bind(listen), selector)
        self.listen = listen
        self._status = status
        self._metrics = MetricsRenderer(status, selector, parent_fds)
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
        family, address = config.http_address(listen)
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
