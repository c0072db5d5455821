"""`/metrics`: the Prometheus text of the supervisor's status, rendered in a short-lived
child of the parent and reused for a while (docs/architecture.md, "HTTP").

`StatusCollector` turns `Arbiter.status()` into metric families; `MetricsRenderer` forks the
child that renders them (`children.fork_child`) and hands the body to the HTTP server, which
never renders in the loop. prometheus_client is imported at the first render.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

from supervisor import children, process
from supervisor.policy import State

LOG = logging.getLogger(__name__)

RENDER_SHARE = 0.01  # at most this share of a core goes to rendering /metrics
MAX_REUSE = 1.0  # seconds: a /metrics render is never older than this
RENDER_HEADER = struct.Struct("!dQ")  # from the renderer: its cost (seconds), the body's length
NAMESPACE = "mgr_supervisor"
# A renderer lives at most this long (the HTTP server's own request timeout).
RENDER_TIMEOUT = 5.0

StatusSource = Callable[[], dict[str, Any]]


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
    each of ~1,050 samples), and in the parent it would hold the one loop that long: a
    SIGCHLD or a SIGHUP would wait, and restarts would be slower while scraped. A fork of
    the parent has the table and the beacons as they are: it renders, writes the body to a
    pipe and exits. The parent forks, reads the pipe from its loop and reaps the child, which
    lives at most RENDER_TIMEOUT: ~8 ms of the parent's CPU at 256 workers, never more than
    ~5 ms in one pass.

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
        return self._began + RENDER_TIMEOUT if self._pipe >= 0 else None

    def expire(self, now: float) -> None:
        if self._pipe >= 0 and now >= self._began + RENDER_TIMEOUT:
            LOG.warning("HTTP: /metrics not rendered within %ss; renderer killed", RENDER_TIMEOUT)
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
            "Seconds since the manager was last RUNNING (0 while it is, and while STOPPED on "
            "request; since it was added if it never was).",
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
