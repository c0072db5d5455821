"""The control socket under bad and slow clients, and mgr-supervisorctl under big replies."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

import pytest

from tests.functional.conftest import ctl
from tests.functional.test_ctl import control_socket
from tests.functional.test_single_instance import DribblingClient


def ask(path: str, payload: bytes) -> dict[str, object]:
    """Send raw bytes as one request; the one-line answer, parsed."""
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(5)
    with client:
        client.connect(path)
        client.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data, f"no answer to {payload[:40]!r}"
    return json.loads(data)


MALFORMED = {
    "not json": b"{this is not json\n",
    "deeply nested": b"[" * 50_000 + b"\n",
    "deeply nested, over 64 KiB": b"[" * 100_000 + b"\n",
    "a list": b'["status"]\n',
    "a string": b'"status"\n',
    "not utf-8": b'{"command": "\xff\xfe"}\n',
}


def test_a_malformed_request_gets_a_one_line_error_and_no_traceback(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    path = control_socket(supervisor)
    for name, payload in MALFORMED.items():
        answer = ask(path, payload)
        assert answer["ok"] is False, name
        assert str(answer["error"]).startswith("malformed request"), (name, answer)
        assert "Traceback" not in supervisor.log(), name
    assert ask(path, b'{"command": "status"}\n')["ok"] is True
    assert supervisor.proc.poll() is None


def test_slow_and_silent_clients_never_delay_another_request(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    path = control_socket(supervisor)
    clients = [DribblingClient(path), DribblingClient(path, every=60), DribblingClient(path)]
    try:
        for _ in range(3):
            started = time.monotonic()
            result = ctl(supervisor, "status")
            assert result.returncode in (0, 1), result.stderr  # 1: not yet past start_secs
            assert f"mgr-supervisor pid {supervisor.pid}" in result.stdout
            assert time.monotonic() - started < 3, "a slow client delayed a status request"
    finally:
        for client in clients:
            client.close()


def big_status(managers: int = 80, workers: int = 100) -> dict[str, object]:
    """A status as the supervisor sends it, of managers * workers workers."""
    return {
        "pid": 1,
        "uptime": 1.0,
        "managers": [
            {
                "name": f"manager{m:03d}",
                "state": "RUNNING",
                "running": workers,
                "wanted": workers,
                "restarts": 0,
                "last_exit": "-",
                "workers": [
                    {
                        "worker_id": w,
                        "pid": 100_000 + m * workers + w,
                        "phase": "idle",
                        "process_state": "sleeping",
                        "ready": True,
                        "uptime": 12.5,
                        "rss_mb": 42.0,
                        "heartbeat_age": 0.5,
                        "stopping": None,
                    }
                    for w in range(workers)
                ],
            }
            for m in range(managers)
        ],
    }


class FakeSupervisor:
    """A Unix socket server at the control socket's path that answers every request with
    one canned line."""

    def __init__(self, path: str, answer: bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.answer = answer
        self.requests: list[bytes] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):  # a client may hang up: not our test
                conn.settimeout(5)
                data = b""
                while b"\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data)
                conn.sendall(self.answer)

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_ctl_reads_a_status_reply_of_any_size(supervisor, as_json):
    supervisor.configure({"alpha": {}})
    status = big_status()
    answer = json.dumps({"ok": True, "status": status}).encode() + b"\n"
    assert len(answer) > 2**20
    server = FakeSupervisor(os.path.join(supervisor.state_path, "control.sock"), answer)
    try:
        result = ctl(supervisor, "status", *(["--json"] if as_json else []))
    finally:
        server.close()
    assert server.requests, "ctl did not reach the fake supervisor"
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    if as_json:
        assert json.loads(result.stdout)["managers"][-1]["name"] == "manager079"
    else:
        assert "manager079" in result.stdout and str(100_000 + 8000 - 1) in result.stdout
