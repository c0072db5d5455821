"""One supervisor per state_path, decided by a lock held for the parent's life, never a timeout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

from tests.functional.conftest import SCRIPT, TESTS_DIR, ctl
from tests.functional.test_ctl import control_socket


class DribblingClient:
    """A control-socket client that sends one byte now and then and never a whole line."""

    def __init__(self, path: str, every: float = 0.5) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self._every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._dribble, daemon=True)
        self._thread.start()

    def _dribble(self) -> None:
        while not self._done.wait(self._every):
            try:
                self.sock.send(b" ")
            except OSError:
                return

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.sock.close()


def test_a_busy_control_socket_does_not_let_a_second_supervisor_start(supervisor, tmp_path):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    path = control_socket(supervisor)
    before = os.stat(path).st_ino
    clients = [DribblingClient(path), DribblingClient(path, every=60)]
    second = subprocess.Popen(
        [str(SCRIPT), "--config-file", str(supervisor.config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(TESTS_DIR.parent)),
    )
    try:
        stdout, stderr = second.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=15)
        supervisor.events()  # the second one's workers, for the leftover check
        raise AssertionError("a second supervisor is running beside the first") from None
    finally:
        for client in clients:
            client.close()
    assert second.returncode == 78, stderr
    assert "another supervisor is running" in stderr
    assert "Traceback" not in stderr
    assert supervisor.count("init_host") == 1, "the second supervisor forked workers"
    assert os.stat(path).st_ino == before, "the second supervisor replaced the control socket"
    status = json.loads(ctl(supervisor, "status", "--json").stdout)
    assert status["pid"] == supervisor.pid


def test_the_lock_is_held_for_the_parents_life(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    lock = os.path.join(supervisor.state_path, "mgr-supervisor.lock")
    holders = set()
    with open("/proc/locks") as locks:
        inode = os.stat(lock).st_ino
        for line in locks:
            fields = line.split()
            if fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
                holders.add(int(fields[4]))
    assert supervisor.pid in holders
    started = time.monotonic()
    assert supervisor.stop() == 0
    assert time.monotonic() - started < 10
