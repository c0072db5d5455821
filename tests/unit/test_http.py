"""The HTTP endpoint's pure parts: the listen address, request heads, the health verdict, the
metric families, and the table's counters they read."""

from __future__ import annotations

import os
import selectors
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor import health, http, metrics, opts, views
from supervisor.policy import RestartPolicy, RestartTracker, State
from supervisor.table import ManagerRecord, Reloads, proc_stat
from tests.ports import free_port
from tests.unit.loop import pump


def worker(worker_id: int = 0, **overrides: Any) -> dict[str, Any]:
    return {
        "worker_id": worker_id,
        "pid": 1000 + worker_id,
        "phase": "idle",
        "ready": True,
        "process_state": "sleeping",
        "uptime": 12.5,
        "rss_mb": 40.0,
        "heartbeat_age": 0.5,
        "stopping": None,
        "problem": None,
        "rpc": "off",
        "rpc_served": 0,
        "rpc_failed": 0,
        "rpc_rejected": 0,
        **overrides,
    }


def manager(name: str = "alpha", count: int = 2, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "state": "RUNNING",
        "running": count,
        "wanted": count,
        "ready": count,
        "restarts": 0,
        "failed_starts": 0,
        "last_exit": "-",
        "not_ready_for": 0.0,
        "rpc_served": 0,
        "rpc_failed": 0,
        "rpc_rejected": 0,
        "workers": [worker(i) for i in range(count)],
        **overrides,
    }


def status(*managers: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "pid": 1,
        "uptime": 60.0,
        "database": "ok",
        "report_age": 2.5,
        "rpc": False,
        "reloads": {"applied": 0, "rejected": 0, "last_at": None, "last_ok": None},
        "managers": list(managers) or [manager()],
        **overrides,
    }


# -- [supervisor] http_listen


@pytest.mark.parametrize(
    ("value", "family", "address"),
    [
        ("127.0.0.1:9292", socket.AF_INET, ("127.0.0.1", 9292)),
        ("[::1]:9292", socket.AF_INET6, ("::1", 9292, 0, 0)),
        (":9292", socket.AF_INET, ("0.0.0.0", 9292)),
    ],
)
def test_listen_addresses(value, family, address):
    assert opts.http_address(value) == (family, address)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9292", "expected HOST:PORT"),
        ("127.0.0.1:0", "not a number from 1 to 65535"),
        ("127.0.0.1:65536", "not a number from 1 to 65535"),
        ("127.0.0.1:http", "not a number from 1 to 65535"),
        ("127.0.0.1:９２", "not a number from 1 to 65535"),
        ("::1:9292", "needs brackets"),
        ("no-such-host.invalid:9292", "cannot resolve 'no-such-host.invalid'"),
    ],
)
def test_bad_listen_addresses_say_why(value, reason):
    with pytest.raises(ValueError, match=reason):
        opts.http_address(value)


# -- requests


def test_a_request_head_ends_at_its_blank_line():
    assert http.head_end(b"GET / HTTP/1.1\r\nHost: x\r\n") == -1
    assert http.head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody") == 27
    assert http.head_end(b"GET / HTTP/1.0\n\n") == 16


def test_the_request_line_gives_method_and_decoded_path():
    assert http.parse_request_line(b"GET /metrics HTTP/1.1\r\n\r\n") == ("GET", "/metrics")
    assert http.parse_request_line(b"HEAD /healthz/a%20b?x=1 HTTP/1.0\r\n\r\n") == (
        "HEAD",
        "/healthz/a b",
    )


@pytest.mark.parametrize(
    "head",
    [
        b"GET /metrics\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"GET / SPDY/3\r\n\r\n",
        b"\xff\r\n",
    ],
)
def test_a_malformed_request_line_is_a_bad_request(head):
    with pytest.raises(http.BadRequest):
        http.parse_request_line(head)


def test_routes_methods_and_unknown_paths():
    def source() -> dict[str, Any]:
        return status()

    assert http.respond("GET", "/livez", source).code == 200
    assert http.respond("GET", "/healthz", source).code == 200
    assert http.respond("GET", "/healthz/alpha", source).code == 200
    assert http.respond("GET", "/healthz/nope", source).code == 404
    assert http.respond("GET", "/nope", source).code == 404
    assert http.respond("GET", "/metrics", source) is None  # rendered apart
    refused = http.respond("POST", "/metrics", source)
    assert (refused.code, refused.allow) == (405, "GET, HEAD")
    answer = http.respond("HEAD", "/healthz", source)
    head = answer.encode(head_only=True)
    assert head.endswith(b"\r\n\r\n") and b"Content-Length: %d" % len(answer.body) in head
    assert b"Connection: close" in head


class Scraper:
    """Drives a MetricsRenderer as the parent's loop does, on a fake clock."""

    def __init__(self, tmp_path: Path, cost: float = 0.004, fail: bool = False) -> None:
        self.now = 100.0
        self.cost = cost
        self.log = tmp_path / "renders"
        self.selector = selectors.DefaultSelector()

        def source() -> dict[str, Any]:
            with self.log.open("a") as f:  # runs in the renderer child
                f.write(f"{os.getpid()}\n")
            if fail:
                raise RuntimeError("no status")
            self.now += self.cost  # what the render costs
            return status(manager("alpha"), uptime=self.now)

        self.renderer = metrics.MetricsRenderer(source, self.selector, list, clock=lambda: self.now)

    def at(self, moment: float) -> bytes | None:
        self.now = moment
        body = self.renderer.fresh()
        if body is not None:
            return body
        done: list[bytes | None] = []
        self.renderer.render(done.append)
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            for key, mask in self.selector.select(1):
                key.data(mask)
        assert done, "no render within 10 s"
        return done[0]

    def renderers(self) -> list[int]:
        return [int(line) for line in self.log.read_text().split()]


def test_metrics_are_rendered_in_a_child_and_reused_for_a_hundred_times_their_cost(tmp_path):
    scraper = Scraper(tmp_path)
    first = scraper.at(100.0)
    assert first is not None and b"mgr_supervisor_worker_uptime_seconds{" in first
    assert scraper.at(100.3) == first  # within 100 x 4 ms: the same body
    second = scraper.at(100.41)
    assert second is not None and second != first
    scraper.cost = 0.05  # a slow render: reused for MAX_REUSE, not 5 s
    scraper.at(101.0)
    scraper.at(101.9)
    scraper.at(102.1)
    pids = scraper.renderers()
    assert len(pids) == 4 and os.getpid() not in pids and len(set(pids)) == 4
    scraper.renderer.close()
    for pid in pids:  # every renderer reaped: none left a zombie
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    assert not scraper.renderer.pids
    assert scraper.renderer.content_type.startswith("text/plain; version=")


def test_when_fork_fails_the_loop_renders_itself(tmp_path, monkeypatch, caplog):
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    scraper = Scraper(tmp_path)
    body = scraper.at(100.0)
    assert body is not None and b"mgr_supervisor_worker_phase{" in body
    assert scraper.renderers() == [os.getpid()] and not scraper.renderer.pids
    assert "cannot fork to render /metrics" in caplog.text


def test_a_render_that_fails_answers_none_and_the_next_scrape_tries_again(tmp_path, caplog):
    scraper = Scraper(tmp_path, fail=True)
    assert scraper.at(100.0) is None
    assert scraper.at(100.001) is None
    assert len(scraper.renderers()) == 2
    scraper.renderer.close()
    assert "the /metrics renderer ended without a whole answer" in caplog.text


# -- /healthz


def test_every_manager_running_and_ready_is_healthy():
    code, body = views.health_verdict(status(manager("alpha"), manager("beta", count=1)))
    assert code == 200 and body["status"] == "ok"
    assert [(m["name"], m["healthy"], m["reasons"]) for m in body["managers"]] == [
        ("alpha", True, []),
        ("beta", True, []),
    ]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"state": "FATAL", "ready": 0, "last_exit": "exit status 1"}, "FATAL: gave up"),
        ({"state": "BACKOFF", "ready": 1}, "BACKOFF: waiting to start again"),
        ({"state": "STARTING", "ready": 1}, "STARTING: 1/2 workers ready"),
        ({"state": "STOPPING", "ready": 0}, "STOPPING: 0/2 workers ready"),
        ({"ready": 1}, "1/2 workers ready"),
        (
            {"workers": [worker(0, problem="no heartbeat for 9.0s"), worker(1)]},
            "worker 0 (pid 1000) hung: no heartbeat for 9.0s",
        ),
        (
            {"workers": [worker(0), worker(1, process_state="stopped")]},
            "worker 1 (pid 1001): process stopped",
        ),
        (
            {"workers": [worker(0, rpc="reconnecting"), worker(1)]},
            "worker 0 (pid 1000): broker down",
        ),
        (
            {"workers": [worker(0, phase=health.WAITING_FOR_BROKER), worker(1)]},
            "worker 0 (pid 1000): broker down: waiting",
        ),
    ],
)
def test_an_unhealthy_manager_says_why(overrides, reason):
    code, body = views.health_verdict(status(manager("alpha", **overrides), manager("beta")))
    assert code == 503 and body["status"] == "unhealthy"
    alpha, beta = body["managers"]
    assert not alpha["healthy"] and any(r.startswith(reason) for r in alpha["reasons"])
    assert beta["healthy"]
    assert views.health_verdict(status(manager("alpha", **overrides)), "beta")[0] == 404
    assert views.health_verdict(status(manager("alpha", **overrides), manager("beta")), "beta") == (
        200,
        {"status": "ok", "database": "ok", "managers": [beta]},
    )


def test_a_database_down_fails_every_manager():
    code, body = views.health_verdict(status(database="unreachable"))
    assert code == 503
    assert "database down: service records wait for it" in body["managers"][0]["reasons"]


def test_a_stopped_manager_fails_only_its_own_probe():
    stopped = manager("beta", state="STOPPED", running=0, wanted=0, ready=0, workers=[])
    assert views.health_verdict(status(manager("alpha"), stopped))[0] == 200
    code, body = views.health_verdict(status(manager("alpha"), stopped), "beta")
    assert code == 503 and body["managers"][0]["reasons"][0].startswith("STOPPED")


# -- /metrics


def families(text: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def samples(family: Any) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def test_metrics_per_manager_and_worker():
    fatal = manager("beta", count=0, state="FATAL", ready=0, running=0, wanted=1)
    fatal.update(restarts=5, failed_starts=6, not_ready_for=42.0)
    found = families(metrics.metrics_text(status(manager("alpha"), fatal)))
    assert metrics.metrics_content_type().startswith("text/plain")
    states = samples(found["mgr_supervisor_manager_state"])
    assert states[(("manager", "alpha"), ("state", "RUNNING"))] == 1
    assert states[(("manager", "beta"), ("state", "FATAL"))] == 1
    assert sum(states.values()) == 2 and len(states) == 2 * len(State)
    assert samples(found["mgr_supervisor_manager_failed_starts"]) == {
        (("manager", "alpha"),): 0,
        (("manager", "beta"),): 6,
    }
    assert found["mgr_supervisor_manager_restarts"].type == "counter"
    assert samples(found["mgr_supervisor_manager_not_ready_seconds"])[(("manager", "beta"),)] == 42
    ready = samples(found["mgr_supervisor_manager_workers_ready"])
    assert ready == {(("manager", "alpha"),): 2, (("manager", "beta"),): 0}
    rss = samples(found["mgr_supervisor_worker_resident_memory_bytes"])
    assert rss == {
        (("manager", "alpha"), ("worker", "0")): 40 * 2**20,
        (("manager", "alpha"), ("worker", "1")): 40 * 2**20,
    }
    phases = samples(found["mgr_supervisor_worker_phase"])
    assert phases[(("manager", "alpha"), ("phase", "idle"), ("worker", "0"))] == 1
    for name in ("worker_heartbeat_age_seconds", "worker_uptime_seconds", "uptime_seconds"):
        assert f"mgr_supervisor_{name}" in found
    assert samples(found["mgr_supervisor_service_report_age_seconds"]) == {(): 2.5}
    assert samples(found["mgr_supervisor_database_up"]) == {(): 1}
    assert "mgr_supervisor_process_cpu_seconds" in found  # the parent's own, by prometheus_client
    assert "mgr_supervisor_rpc_calls_served" not in found  # RPC is off
    assert "mgr_supervisor_last_reload_timestamp_seconds" not in found  # no reload yet


def test_metrics_of_reloads_and_rpc():
    reloads = {"applied": 3, "rejected": 1, "last_at": 1_700_000_000.0, "last_ok": False}
    served = manager("alpha", rpc_served=10, rpc_failed=2, rpc_rejected=5)
    found = families(metrics.metrics_text(status(served, rpc=True, reloads=reloads)))
    assert samples(found["mgr_supervisor_reloads"]) == {(): 3}
    assert samples(found["mgr_supervisor_reloads_rejected"]) == {(): 1}
    assert samples(found["mgr_supervisor_last_reload_timestamp_seconds"]) == {(): 1.7e9}
    assert samples(found["mgr_supervisor_last_reload_successful"]) == {(): 0}
    assert samples(found["mgr_supervisor_rpc_calls_served"]) == {(("manager", "alpha"),): 10}
    assert samples(found["mgr_supervisor_rpc_calls_failed"]) == {(("manager", "alpha"),): 2}
    assert samples(found["mgr_supervisor_rpc_calls_rejected"]) == {(("manager", "alpha"),): 5}


def test_every_metric_is_in_the_namespace_with_a_unit_where_it_has_one():
    found = families(metrics.metrics_text(status(rpc=True)))
    assert all(name.startswith("mgr_supervisor_") for name in found)
    counters = {name for name, f in found.items() if f.type == "counter"}
    assert "mgr_supervisor_manager_restarts" in counters  # exposed as ..._total
    assert b"mgr_supervisor_manager_restarts_total{" in metrics.metrics_text(status())


# -- the table's counters


def test_failed_starts_are_counted_beyond_the_trackers_resets():
    record = ManagerRecord(spec=None, tracker=RestartTracker(RestartPolicy()))  # type: ignore[arg-type]
    record.record_exit(1.0, failed_start=True)
    record.record_exit(2.0, failed_start=False)  # settled: the tracker starts over
    record.record_exit(3.0, failed_start=True)
    assert (record.failed_starts_total, record.tracker.in_a_row) == (2, 1)


def test_not_ready_since_follows_the_state():
    record = ManagerRecord(spec=None, tracker=RestartTracker(RestartPolicy()))  # type: ignore[arg-type]
    assert record.unready_since is not None  # since it was added
    record.note_state(State.RUNNING, 10.0)
    assert record.unready_since is None
    record.note_state(State.STARTING, 12.0)
    record.note_state(State.BACKOFF, 13.0)
    assert record.unready_since == 12.0


def test_reloads_count_applied_and_rejected():
    reloads = Reloads()
    reloads.count(ok=True)
    reloads.count(ok=False)
    assert (reloads.applied, reloads.rejected, reloads.last_ok) == (1, 1, False)
    assert reloads.last_at is not None


def test_proc_stat_reads_state_and_rss():
    state, rss = proc_stat(os.getpid())
    assert state == "running" and rss > 2**20
    assert proc_stat(2**22 + 1) == ("gone", None)  # above pid_max


# -- the server, driven by a selector as the arbiter's loop drives it


@pytest.fixture
def server():
    selector = selectors.DefaultSelector()
    port = free_port()
    served = http.HttpServer(f"127.0.0.1:{port}", selector, status, list)
    served.port = port  # type: ignore[attr-defined]
    served.pump = lambda: pump(selector)  # type: ignore[attr-defined]
    yield served
    served.close()
    selector.close()


def connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.settimeout(1)
    return client


def answer(client: socket.socket, server: Any) -> bytes:
    data = b""
    for _ in range(50):
        server.pump()
        try:
            chunk = client.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"no end of answer: {data[:200]!r}")


def test_a_request_is_answered_and_the_connection_closed(server):
    with connect(server.port) as client:
        client.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = answer(client, server)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\nok\n")
    assert server.next_deadline() is None  # no connection, no timer


@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (b"GET /livez\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET /livez HTTP/1.1\r\nX: " + b"a" * http.MAX_HEAD_BYTES, b"HTTP/1.1 431 "),
    ],
)
def test_bad_and_oversized_requests_are_refused(server, request_bytes, status_line):
    with connect(server.port) as client:
        client.sendall(request_bytes)
        assert answer(client, server).startswith(status_line)


def test_a_new_connection_pushes_out_the_oldest_unanswered_one(server):
    clients = [connect(server.port) for _ in range(http.MAX_CONNECTIONS + 1)]
    try:
        server.pump()
        assert len(server.fds()) == 1 + http.MAX_CONNECTIONS
        assert answer(clients[0], server) == b""  # the oldest: closed without an answer
        clients[-1].sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert answer(clients[-1], server).startswith(b"HTTP/1.1 200 OK")
    finally:
        for client in clients:
            client.close()


def test_a_silent_client_is_dropped_at_its_deadline(server):
    with connect(server.port) as client:
        client.sendall(b"GET /metrics HTTP/1.1\r\n")  # never the blank line
        server.pump()
        deadline = server.next_deadline()
        assert deadline is not None
        server.expire(deadline - 0.1)
        assert len(server.fds()) == 2
        server.expire(deadline)
        assert len(server.fds()) == 1 and client.recv(1) == b""


def test_an_accept_that_fails_pauses_the_listener_instead_of_spinning(server, monkeypatch):
    def out_of_descriptors(self: socket.socket) -> None:
        raise OSError(24, "Too many open files")

    with monkeypatch.context() as patch:
        patch.setattr(socket.socket, "accept", out_of_descriptors)
        with connect(server.port):
            server.pump()
    paused_until = server.next_deadline()
    assert paused_until is not None  # the loop wakes up to accept again, without a client
    with connect(server.port) as client:
        server.pump()
        assert len(server.fds()) == 1  # not accepted yet: the listener is paused
        server.expire(paused_until)
        assert server.next_deadline() is None or server.next_deadline() > paused_until
        client.sendall(b"GET /livez HTTP/1.1\r\n\r\n")
        assert answer(client, server).endswith(b"ok\n")
