"""`[supervisor] http_listen`: /livez, /healthz, /healthz/NAME and /metrics from a real
supervisor, read with the standard library's HTTP client and prometheus_client's parser."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor import http as http_server
from supervisor import metrics
from tests.functional.conftest import CTL, SCRIPT, TESTS_DIR, render_config
from tests.ports import free_port

FAST = {"start_secs": 0.2}


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def healthz(port: int, name: str = "") -> tuple[int, dict[str, Any]]:
    code, _, body = get(port, "/healthz" + (f"/{name}" if name else ""))
    return code, json.loads(body)


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every family's samples by their sorted labels (counters named without `_total`)."""
    code, headers, body = get(port, "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    return {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(body.decode())
    }


def start(supervisor, managers: dict[str, dict[str, object]], port: int) -> None:
    supervisor.configure(managers, supervisor={"http_listen": f"127.0.0.1:{port}"})
    supervisor.start()
    supervisor.wait_for(lambda: answers(port), what="the HTTP endpoint")


def answers(port: int) -> bool:
    try:
        return get(port, "/livez")[0] == 200
    except OSError:
        return False


def ctl_status(supervisor) -> dict[str, Any]:
    result = subprocess.run(
        [str(CTL), "--config-file", str(supervisor.config_file), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return json.loads(result.stdout)


def test_the_endpoints_of_a_running_supervisor(supervisor):
    port = free_port()
    start(supervisor, {"alpha": {"workers": 2, **FAST}, "beta": FAST}, port)
    supervisor.wait_for(lambda: healthz(port)[0] == 200, what="/healthz 200")

    code, headers, body = get(port, "/livez")
    assert (code, body, headers["Connection"]) == (200, b"ok\n", "close")
    code, verdict = healthz(port)
    assert verdict["status"] == "ok" and verdict["database"] in ("ok", "unknown")
    assert [(m["name"], m["state"], m["ready"], m["wanted"]) for m in verdict["managers"]] == [
        ("alpha", "RUNNING", 2, 2),
        ("beta", "RUNNING", 1, 1),
    ]
    code, verdict = healthz(port, "beta")
    assert code == 200 and [m["name"] for m in verdict["managers"]] == ["beta"]
    assert healthz(port, "nope") == (404, {"status": "unknown", "error": "no manager named 'nope'"})
    assert get(port, "/nope")[0] == 404
    code, headers, _ = get(port, "/metrics", method="POST")
    assert (code, headers["Allow"]) == (405, "GET, HEAD")
    code, headers, body = get(port, "/healthz", method="HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0

    found = scrape(port)
    assert found["mgr_supervisor_manager_state"][(("manager", "alpha"), ("state", "RUNNING"))] == 1
    assert found["mgr_supervisor_manager_workers_ready"] == {
        (("manager", "alpha"),): 2,
        (("manager", "beta"),): 1,
    }
    workers = set(found["mgr_supervisor_worker_resident_memory_bytes"])
    assert workers == {
        (("manager", "alpha"), ("worker", "0")),
        (("manager", "alpha"), ("worker", "1")),
        (("manager", "beta"), ("worker", "0")),
    }
    assert all(v > 2**20 for v in found["mgr_supervisor_worker_resident_memory_bytes"].values())
    for family in ("worker_phase", "worker_heartbeat_age_seconds", "worker_uptime_seconds"):
        assert len(found[f"mgr_supervisor_{family}"]) == 3, family
    for family in ("manager_restarts", "manager_failed_starts", "reloads", "reloads_rejected"):
        assert f"mgr_supervisor_{family}" in found, family
    assert found["mgr_supervisor_process_resident_memory_bytes"][()] > 2**20


def test_metrics_are_rendered_by_children_the_parent_reaps(supervisor):
    port = free_port()
    start(supervisor, {"alpha": FAST}, port)
    parent = psutil.Process(supervisor.pid)
    found = scrape(port)
    # Rendered by a child, but the process figures are the parent's own.
    started = found["mgr_supervisor_process_start_time_seconds"][()]
    assert started == pytest.approx(parent.create_time(), abs=1)
    assert found["mgr_supervisor_process_resident_memory_bytes"][()] == pytest.approx(
        parent.memory_info().rss, rel=0.5
    )
    for _ in range(3):  # more than MAX_REUSE apart: a renderer each time
        time.sleep(metrics.MAX_REUSE + 0.1)
        assert get(port, "/metrics", method="HEAD")[0] == 200

    def only_the_worker_and_the_recorder() -> bool:
        children = parent.children()
        return len(children) == 2 and psutil.STATUS_ZOMBIE not in {c.status() for c in children}

    supervisor.wait_for(only_the_worker_and_the_recorder, what="every renderer reaped")
    assert "orphan" not in supervisor.log() and "Traceback" not in supervisor.log()


def test_healthz_names_a_fatal_and_a_starting_manager(supervisor):
    port = free_port()
    managers = {
        "alpha": {"fail_in": "init_host", "start_retries": 0, **FAST},
        "beta": {"start_secs": 60},  # ready, but STARTING until it lived 60 s
        "gamma": FAST,
    }
    start(supervisor, managers, port)
    supervisor.wait_for(lambda: "alpha is FATAL" in supervisor.log(), what="alpha FATAL")
    supervisor.wait_for(lambda: healthz(port, "gamma")[0] == 200, what="gamma healthy")
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 2, what="beta ready")

    code, verdict = healthz(port)
    assert code == 503 and verdict["status"] == "unhealthy"
    alpha, beta, gamma = verdict["managers"]
    assert (alpha["state"], alpha["healthy"]) == ("FATAL", False)
    assert alpha["reasons"][0].startswith(
        "FATAL: gave up after failed starts (last: exit status 1)"
    )
    assert (beta["state"], beta["reasons"]) == ("STARTING", ["STARTING: 1/1 workers ready"])
    assert gamma["healthy"] and gamma["reasons"] == []
    assert healthz(port, "alpha")[0] == 503

    found = scrape(port)
    assert found["mgr_supervisor_manager_state"][(("manager", "alpha"), ("state", "FATAL"))] == 1
    assert found["mgr_supervisor_manager_failed_starts"][(("manager", "alpha"),)] == 1
    assert found["mgr_supervisor_manager_not_ready_seconds"][(("manager", "alpha"),)] > 0
    assert found["mgr_supervisor_manager_not_ready_seconds"][(("manager", "gamma"),)] == 0


def test_status_and_metrics_agree(supervisor):
    port = free_port()
    start(supervisor, {"alpha": {"workers": 2, **FAST}, "beta": FAST}, port)
    supervisor.wait_for(lambda: healthz(port)[0] == 200, what="/healthz 200")
    victim = supervisor.worker_titles()["mgr-supervisor: alpha worker(1)"]
    os.kill(victim, signal.SIGKILL)
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 4, what="a new alpha(1)")
    supervisor.wait_for(lambda: healthz(port)[0] == 200, what="/healthz 200 again")

    status = ctl_status(supervisor)
    found = scrape(port)
    for m in status["managers"]:
        name = (("manager", m["name"]),)
        states = found["mgr_supervisor_manager_state"]
        assert states[(*name, ("state", m["state"]))] == 1
        for key in ("wanted", "running", "ready"):
            assert found[f"mgr_supervisor_manager_workers_{key}"][name] == m[key], key
        assert found["mgr_supervisor_manager_restarts"][name] == m["restarts"]
        assert found["mgr_supervisor_manager_failed_starts"][name] == m["failed_starts"]
        for w in m["workers"]:
            labels = (*name, ("worker", str(w["worker_id"])))
            rss = found["mgr_supervisor_worker_resident_memory_bytes"][labels]
            assert rss == pytest.approx(w["rss_mb"] * 2**20, rel=0.1)
            phase = found["mgr_supervisor_worker_phase"]
            assert phase[(labels[0], ("phase", w["phase"]), labels[1])] == 1
            assert found["mgr_supervisor_worker_uptime_seconds"][labels] == pytest.approx(
                w["uptime"], abs=5
            )
    alpha = status["managers"][0]
    assert alpha["restarts"] == 1 and victim not in {w["pid"] for w in alpha["workers"]}
    assert sum(len(m["workers"]) for m in status["managers"]) == len(
        found["mgr_supervisor_worker_uptime_seconds"]
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9292", "expected HOST:PORT"),
        ("127.0.0.1:99999", "port '99999' is not a number from 1 to 65535"),
        ("::1:9292", "an IPv6 address needs brackets"),
    ],
)
@pytest.mark.parametrize("check_only", [True, False])
def test_a_bad_http_listen_is_a_config_error(tmp_path, value, expected, check_only):
    config = tmp_path / "bad.conf"
    events = tmp_path / "events"
    config.write_text(
        render_config(events, {"alpha": {}}, supervisor={"http_listen": value}, state_path=tmp_path)
    )
    result = subprocess.run(
        [str(SCRIPT), "--config-file", str(config), *(["--check-config"] * check_only)],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, PYTHONPATH=str(TESTS_DIR.parent)),
    )
    assert result.returncode == 78, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"mgr-supervisor: config error: {config}: [supervisor] http_listen: ")
    assert f"invalid value {value!r}: {expected}" in line
    assert not events.exists()


def test_a_port_in_use_is_a_config_error(supervisor):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        supervisor.configure({"alpha": {}}, supervisor={"http_listen": f"127.0.0.1:{port}"})
        supervisor.start()
        assert supervisor.wait_exit(30) == 78
    (line,) = supervisor.log().strip().splitlines()[-1:]
    assert line == (
        f"mgr-supervisor: config error: [supervisor] http_listen: cannot listen on "
        f"127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in supervisor.log()
    assert supervisor.events() == []
    assert not os.path.exists(os.path.join(supervisor.state_path, "control.sock"))


def test_slow_clients_delay_no_reload_no_restart_and_no_answer(supervisor):
    """200 idle connections and a few half-sent requests: a SIGHUP, a restart after SIGKILL
    and /healthz all happen as usual, the connections are closed at their deadline, and
    the parent is idle again once they are gone."""
    port = free_port()
    start(supervisor, {"alpha": {"workers": 2, **FAST}}, port)
    supervisor.wait_for(lambda: healthz(port)[0] == 200, what="/healthz 200")
    parent = psutil.Process(supervisor.pid)

    opened = time.monotonic()
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    for _ in range(5):
        half = socket.create_connection(("127.0.0.1", port), timeout=5)
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: test\r\n")  # never the blank line
        clients.append(half)
    silent = socket.socket(socket.AF_UNIX)  # the control socket has its deadline too
    silent.connect(os.path.join(supervisor.state_path, "control.sock"))
    clients.append(silent)
    try:
        # A reload, with http_listen changed: applied to the rest, the port kept.
        supervisor.configure(
            {"alpha": {"workers": 2, "label": "reloaded", **FAST}},
            supervisor={"http_listen": f"127.0.0.1:{free_port()}"},
        )
        supervisor.signal(signal.SIGHUP)
        supervisor.wait_for(lambda: supervisor.count("reset") == 2, timeout=10, what="2 resets")
        assert "[supervisor] http_listen changed, but it needs a restart" in supervisor.log()

        victim = supervisor.pids_with("post_start_hook")[0]
        os.kill(victim, signal.SIGKILL)
        supervisor.wait_for(
            lambda: supervisor.count("post_start_hook") == 3, timeout=10, what="a restart"
        )
        asked = time.monotonic()
        assert healthz(port)[0] in (200, 503)
        assert time.monotonic() - asked < 3, "/healthz was slow to answer"
        supervisor.wait_for(lambda: healthz(port)[0] == 200, timeout=10, what="healthy again")

        for client in clients:  # each closed by the supervisor, at the latest at its deadline
            remaining = opened + http_server.REQUEST_TIMEOUT + 10 - time.monotonic()
            client.settimeout(max(0.1, remaining))
            try:
                assert client.recv(1024) == b"", "an idle client got an answer"
            except ConnectionResetError:
                pass
            except TimeoutError:
                pytest.fail(f"a connection still open {time.monotonic() - opened:.1f}s later")
    finally:
        for client in clients:
            client.close()
    before = sum(parent.cpu_times()[:2])
    time.sleep(2)
    assert sum(parent.cpu_times()[:2]) - before < 0.5, "the parent is busy with no client"
