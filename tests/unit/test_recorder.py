"""The recorder's loop over real Unix sockets, with a database that records its calls."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from supervisor import health, recorder


class FakeDb:
    """The db api calls the recorder makes, answered from memory."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        self.stopped: dict[int, int] = {}

    def services_start(self, host: str, pids: dict[tuple[str, int], int]) -> dict[Any, Any]:
        for key, pid in pids.items():
            row = self.rows.setdefault(key, {"id": len(self.rows) + 1, "report_count": 0})
            row.update(pid=pid, stopped=False)
        return {key: _Row(self.rows[key]) for key in pids}

    def services_report(self, counts: dict[int, int]) -> dict[int, Any]:
        found = {row["id"]: row for row in self.rows.values() if row["id"] in counts}
        for row_id, row in found.items():
            row["report_count"] += counts[row_id]
        return {row_id: _Row(row) for row_id, row in found.items()}

    def services_mark_stopped(self, pids: dict[int, int]) -> int:
        self.stopped.update(pids)
        return len(pids)

    def ensure_schema_once(self) -> None:
        pass


class _Row(dict):
    """What the recorder answers with: a mapping with `items()`, keyed like a row."""


@pytest.fixture
def beacon() -> Any:
    beacon = health.Beacon()
    yield beacon
    beacon.close()


@pytest.fixture
def listener(tmp_path: Path) -> Any:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "recorder.sock"))
    sock.listen()
    yield sock
    sock.close()


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def test_a_stop_sent_just_before_the_worker_went_is_written(listener, beacon) -> None:
    """The report's answer finds the worker gone: its stop, sent before it closed, is
    still read and written (closed unread, the row would stay up)."""
    db = FakeDb()
    rec = recorder.Recorder(listener, "node-a", 1.0, beacon, db)
    listener.setblocking(False)
    worker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    worker.connect(listener.getsockname())
    rec._accept()
    (handle,) = rec._workers
    _send(worker, {"op": "start", "manager": "alpha", "worker_id": 0, "pid": 4242})
    rec._read(handle)
    rec._flush()
    assert handle.row_id == 1
    _send(worker, {"op": "report"})
    rec._read(handle)
    # The worker stops before the report's batch is written, and never reads its answer.
    _send(worker, {"op": "stopped"})
    worker.close()
    rec._next_report_flush = 0.0
    rec._flush()
    rec._flush(final=True)
    assert db.stopped == {1: 4242}
    assert rec._workers == set()
